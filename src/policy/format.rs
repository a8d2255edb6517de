//! Which format the spec asks for, against the one the current value has.
//!
//! `status.format` spells every default out (for readers); `status.requestedFormat` keeps the
//! spec's own fields. Comparing the latter means a release that changes a default rotates
//! nothing, while an edit that removes a field (asking for the default) still issues a new value.

use super::Policy;
use crate::api::{ApiTokenStatus, TokenFormat};
use crate::token::Format;

impl Policy {
    /// Whether the current value no longer has the format the spec asks for. A field the spec
    /// leaves out asks for the default the value was issued with, so a release that changes a
    /// default rotates nothing; removing a field that was set asks for today's default.
    pub fn format_changed(&self, status: &ApiTokenStatus) -> bool {
        let Some(recorded) = &status.format else {
            return true;
        };
        let value = Format::from_spec(Some(recorded));
        let set_then = status
            .requested_format
            .clone()
            .unwrap_or_else(|| set_before_recording(&value));
        let today = Format::default();
        let omitted = Format {
            prefix: if set_then.prefix.is_some() {
                today.prefix
            } else {
                value.prefix.clone()
            },
            length: if set_then.length.is_some() {
                today.length
            } else {
                value.length
            },
            alphabet: if set_then.alphabet.is_some() {
                today.alphabet
            } else {
                value.alphabet
            },
            checksum: if set_then.checksum.is_some() {
                today.checksum
            } else {
                value.checksum
            },
        };
        Format::with_defaults(self.requested_format.clone(), &omitted) != value
    }

    /// Records the format of a value just issued (or recovered), for [`Policy::format_changed`].
    pub fn record_format(&self, status: &mut ApiTokenStatus) {
        status.format = Some(self.format.to_spec());
        status.requested_format = Some(self.requested_format.clone());
    }
}

/// For a status from a release that recorded no `requestedFormat`: the fields that differ from
/// that release's defaults were set in the spec; the others are taken as left out.
fn set_before_recording(value: &Format) -> TokenFormat {
    let then = Format::recorded_defaults();
    TokenFormat {
        prefix: (value.prefix != then.prefix).then(|| value.prefix.clone()),
        length: (value.length != then.length).then_some(value.length as i32),
        alphabet: (value.alphabet != then.alphabet).then_some(value.alphabet),
        checksum: (value.checksum != then.checksum).then_some(value.checksum),
    }
}

#[cfg(test)]
mod tests;
