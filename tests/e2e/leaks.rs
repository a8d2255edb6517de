//! Security 7: run after the suite (`make e2e` does): no value it saw leaked anywhere.

#[tokio::test]
#[ignore = "run after the whole suite by `make e2e`"]
async fn no_issued_value_leaked() {
    crate::harness::assert_no_value_leaked().await;
}
