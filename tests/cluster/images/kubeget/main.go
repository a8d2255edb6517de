// kubeget is the in-cluster client of the local test image: it calls the API server the way a
// workload does (KUBERNETES_SERVICE_HOST/PORT, the mounted ServiceAccount token and CA) and prints
// the HTTP status code and the body, so tests can see what RBAC allows a Pod's identity.
//
//	kubeget /api/v1/namespaces/NS/configmaps
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
)

const sa = "/var/run/secrets/kubernetes.io/serviceaccount/"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: kubeget PATH")
		os.Exit(2)
	}
	token, err := os.ReadFile(sa + "token")
	fail(err)
	ca, err := os.ReadFile(sa + "ca.crt")
	fail(err)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "kubernetes.default.svc"}}}
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	req, err := http.NewRequest("GET", "https://"+host+os.Args[1], nil)
	fail(err)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := client.Do(req)
	fail(err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d\n%s\n", resp.StatusCode, body)
}

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "kubeget:", err)
		os.Exit(1)
	}
}
