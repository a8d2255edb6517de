//! Token values: generation from the OS CSPRNG, CRC32 checksums and fingerprints.
//!
//! [`Token`] deliberately implements neither `Debug` nor `Display` nor `Serialize`: the only way to
//! the plaintext is [`Token::expose`], called where the Secret is built.

use apitoken_verify::checksum;
use rand::{TryRng, rngs::SysRng};

use crate::api::{Alphabet, TokenFormat};

pub const DEFAULT_LENGTH: usize = 40;
pub const MIN_LENGTH: usize = 32;
pub const MAX_LENGTH: usize = 256;

/// A token format with the operator's defaults applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pub prefix: String,
    pub length: usize,
    pub alphabet: Alphabet,
    pub checksum: bool,
}

impl Default for Format {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            length: DEFAULT_LENGTH,
            alphabet: Alphabet::Base62,
            checksum: true,
        }
    }
}

impl Format {
    /// The defaults of every release that recorded no `status.requestedFormat` (0.1): statuses
    /// they wrote are read against these. Never change them, even when [`Format::default`] does.
    // Equal to `Format::default()` until a release changes a default, so replacing the body with
    // `Default::default()` cannot change behaviour today; `policy::format` tests pin the values.
    #[mutants::skip]
    pub fn recorded_defaults() -> Self {
        Self {
            prefix: String::new(),
            length: 40,
            alphabet: Alphabet::Base62,
            checksum: true,
        }
    }

    /// Applies today's defaults (see [`Format::with_defaults`]).
    pub fn from_spec(spec: Option<&TokenFormat>) -> Self {
        Self::with_defaults(spec.cloned().unwrap_or_default(), &Self::default())
    }

    /// The fields `spec` leaves out taken from `defaults`. The schema already bounds `length`;
    /// clamping keeps a value written before the CRD was installed from ever yielding a short
    /// token.
    pub fn with_defaults(spec: TokenFormat, defaults: &Format) -> Self {
        let length = spec.length.map_or(defaults.length, |l| {
            usize::try_from(l).unwrap_or(MIN_LENGTH)
        });
        Self {
            prefix: spec.prefix.unwrap_or_else(|| defaults.prefix.clone()),
            length: length.clamp(MIN_LENGTH, MAX_LENGTH),
            alphabet: spec.alphabet.unwrap_or(defaults.alphabet),
            checksum: spec.checksum.unwrap_or(defaults.checksum),
        }
    }

    /// The spec form with every default spelled out, recorded in status to notice format changes.
    pub fn to_spec(&self) -> TokenFormat {
        TokenFormat {
            prefix: (!self.prefix.is_empty()).then(|| self.prefix.clone()),
            length: Some(self.length as i32),
            alphabet: Some(self.alphabet),
            checksum: Some(self.checksum),
        }
    }

    /// Total length of a token in this format.
    pub fn token_len(&self) -> usize {
        self.prefix.len()
            + self.length
            + if self.checksum {
                checksum_width(self.alphabet)
            } else {
                0
            }
    }
}

/// The alphabet as the verification library knows it; the checksum code is shared with it, so
/// servers check exactly what the operator writes.
fn checksum_alphabet(alphabet: Alphabet) -> checksum::Alphabet {
    match alphabet {
        Alphabet::Base62 => checksum::Alphabet::Base62,
        Alphabet::Hex => checksum::Alphabet::Hex,
        Alphabet::Base64url => checksum::Alphabet::Base64url,
    }
}

fn charset(alphabet: Alphabet) -> &'static [u8] {
    checksum_alphabet(alphabet).chars()
}

/// Characters needed to write any u32 in the alphabet: ceil(32 / log2(size)).
pub fn checksum_width(alphabet: Alphabet) -> usize {
    checksum_alphabet(alphabet).checksum_width()
}

/// A token value. Never printed: no Debug, Display or Serialize on purpose.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a value read back from a Secret.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        std::str::from_utf8(bytes).ok().map(|s| Self(s.to_owned()))
    }

    /// The plaintext, for writing into the Secret and nowhere else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn fingerprint(&self) -> String {
        fingerprint(self.0.as_bytes())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomError(#[source] rand::rngs::SysError);

/// Draws a new token from the OS-backed CSPRNG.
pub fn generate(format: &Format) -> Result<Token, RandomError> {
    let mut rng = SysRng;
    generate_with(format, &mut rng).map_err(RandomError)
}

/// Generation with an injected source of randomness (tests use a deterministic one).
pub fn generate_with<R: TryRng>(format: &Format, rng: &mut R) -> Result<Token, R::Error> {
    let mut out = String::with_capacity(format.token_len());
    out.push_str(&format.prefix);
    push_uniform(rng, charset(format.alphabet), format.length, &mut out)?;
    if format.checksum {
        let sum = checksum::encode(out.as_bytes(), checksum_alphabet(format.alphabet));
        out.push_str(&sum);
    }
    Ok(Token(out))
}

/// Appends `n` characters, each uniform over `chars`: bytes that would bias the modulo are
/// rejected and drawn again.
fn push_uniform<R: TryRng>(
    rng: &mut R,
    chars: &[u8],
    n: usize,
    out: &mut String,
) -> Result<(), R::Error> {
    let size = chars.len();
    let limit = 256 - (256 % size); // largest multiple of `size` not above 256
    let mut buf = [0u8; 64];
    let mut need = n;
    while need > 0 {
        rng.try_fill_bytes(&mut buf)?;
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit).take(need) {
            out.push(char::from(chars[usize::from(b) % size]));
            need -= 1;
        }
    }
    Ok(())
}

/// True when `token` has the format's shape and, if the format has one, a matching checksum.
/// Lets scanners and servers reject look-alikes without a lookup.
pub fn is_well_formed(token: &str, format: &Format) -> bool {
    let chars = charset(format.alphabet);
    let Some(rest) = token.strip_prefix(format.prefix.as_str()) else {
        return false;
    };
    let width = if format.checksum {
        checksum_width(format.alphabet)
    } else {
        0
    };
    if rest.len() != format.length + width || !rest.bytes().all(|b| chars.contains(&b)) {
        return false;
    }
    if !format.checksum {
        return true;
    }
    checksum::ends_with_checksum(token, checksum_alphabet(format.alphabet))
}

/// Full lowercase hex SHA-256, as kept in verifier key sets.
pub use apitoken_verify::sha256_hex;

/// Short fingerprint shown in status, Events and the audit log: `sha256:` + 12 hex digits.
pub fn fingerprint(value: &[u8]) -> String {
    let mut hex = sha256_hex(value);
    hex.truncate(12);
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn format(alphabet: Alphabet, length: usize, checksum: bool, prefix: &str) -> Format {
        Format {
            prefix: prefix.into(),
            length,
            alphabet,
            checksum,
        }
    }

    #[test]
    fn default_format_is_40_base62_with_checksum() {
        let f = Format::from_spec(None);
        assert_eq!(f, format(Alphabet::Base62, 40, true, ""));
        let t = generate(&f).unwrap();
        assert_eq!(t.expose().len(), 46);
        assert!(
            t.expose()
                .bytes()
                .all(|b| charset(Alphabet::Base62).contains(&b))
        );
    }

    #[test]
    fn length_prefix_and_alphabet_are_honoured() {
        for alphabet in [Alphabet::Base62, Alphabet::Hex, Alphabet::Base64url] {
            for length in [MIN_LENGTH, 40, 100, MAX_LENGTH] {
                let f = format(alphabet, length, false, "pay_");
                let t = generate(&f).unwrap();
                let rest = t.expose().strip_prefix("pay_").expect("prefix");
                assert_eq!(rest.len(), length);
                assert!(
                    rest.bytes().all(|b| charset(alphabet).contains(&b)),
                    "{alphabet:?}"
                );
            }
        }
    }

    /// status.format records the format with every default spelled out. What earlier releases
    /// recorded must keep comparing equal (or an upgrade would rotate every token once), and a
    /// prefix must be recorded (or a change from one prefix to another would go unseen).
    #[test]
    fn recorded_format_spells_out_defaults_and_keeps_the_prefix() {
        assert_eq!(
            Format::default().to_spec(),
            TokenFormat {
                prefix: None,
                length: Some(40),
                alphabet: Some(Alphabet::Base62),
                checksum: Some(true),
            }
        );
        let custom = format(Alphabet::Hex, 64, false, "pay_");
        let recorded = TokenFormat {
            prefix: Some("pay_".into()),
            length: Some(64),
            alphabet: Some(Alphabet::Hex),
            checksum: Some(false),
        };
        assert_eq!(custom.to_spec(), recorded);
        assert_eq!(Format::from_spec(Some(&recorded)), custom);
    }

    #[test]
    fn spec_lengths_are_clamped_to_safe_range() {
        let spec = |length| TokenFormat {
            length: Some(length),
            ..Default::default()
        };
        assert_eq!(Format::from_spec(Some(&spec(8))).length, MIN_LENGTH);
        assert_eq!(Format::from_spec(Some(&spec(-1))).length, MIN_LENGTH);
        assert_eq!(Format::from_spec(Some(&spec(10_000))).length, MAX_LENGTH);
        assert_eq!(Format::from_spec(Some(&spec(64))).length, 64);
    }

    #[test]
    fn checksum_round_trips_and_rejects_any_single_change() {
        for alphabet in [Alphabet::Base62, Alphabet::Hex, Alphabet::Base64url] {
            let f = format(alphabet, 40, true, "ak_");
            for _ in 0..200 {
                let t = generate(&f).unwrap();
                assert!(is_well_formed(t.expose(), &f));
                assert_eq!(t.expose().len(), f.token_len());
                // Change each position to another character of the alphabet: CRC32 catches all.
                let bytes = t.expose().as_bytes();
                for i in 3..bytes.len() {
                    let mut edited = bytes.to_vec();
                    let chars = charset(alphabet);
                    let pos = chars.iter().position(|&c| c == bytes[i]).unwrap();
                    edited[i] = chars[(pos + 1) % chars.len()];
                    assert!(!is_well_formed(std::str::from_utf8(&edited).unwrap(), &f));
                }
            }
        }
        let f = Format::default();
        assert!(!is_well_formed("short", &f));
        assert!(!is_well_formed(&"!".repeat(f.token_len()), &f));
    }

    /// Without a checksum only the shape protects: the length and the alphabet each reject alone.
    #[test]
    fn without_a_checksum_length_and_alphabet_each_reject() {
        let f = format(Alphabet::Hex, 32, false, "ak_");
        let good = format!("ak_{}", "a".repeat(32));
        assert!(is_well_formed(&good, &f));
        assert!(
            !is_well_formed(&format!("ak_{}", "a".repeat(31)), &f),
            "short"
        );
        assert!(
            !is_well_formed(&format!("ak_{}", "a".repeat(33)), &f),
            "long"
        );
        assert!(
            !is_well_formed(&format!("ak_{}g", "a".repeat(31)), &f),
            "outside hex"
        );
        assert!(
            !is_well_formed(&format!("bk_{}", "a".repeat(32)), &f),
            "other prefix"
        );
    }

    /// Chi-square goodness of fit over 2.4M characters, against the 99.999th percentile (Wilson-Hilferty:
    /// 121 for 61 degrees of freedom, 52 for 15, 124 for 63), so a correct generator fails about once
    /// in 10^5 runs. A modulo bias (no rejection) on base62 gives a statistic in the thousands.
    #[test]
    fn characters_are_uniform_chi_square() {
        for (alphabet, critical) in [
            (Alphabet::Base62, 121.0),
            (Alphabet::Hex, 52.0),
            (Alphabet::Base64url, 124.0),
        ] {
            let f = format(alphabet, 240, false, "");
            let chars = charset(alphabet);
            let mut counts = vec![0u64; chars.len()];
            for _ in 0..10_000 {
                for b in generate(&f).unwrap().expose().bytes() {
                    counts[chars.iter().position(|&c| c == b).unwrap()] += 1;
                }
            }
            let chi2 = chi_square(&counts);
            assert!(
                chi2 < critical,
                "{alphabet:?}: chi-square {chi2:.1} >= {critical}"
            );
        }
    }

    /// The same statistic catches a biased generator, so the test above can fail.
    /// The same statistic catches the bias that rejection sampling prevents: OS random bytes
    /// reduced modulo 62 without rejection favour the first 8 characters (5/256 vs 4/256).
    #[test]
    fn chi_square_detects_modulo_bias() {
        let mut counts = [0u64; 62];
        let mut buf = [0u8; 4096];
        for _ in 0..600 {
            SysRng.try_fill_bytes(&mut buf).unwrap();
            for b in buf {
                counts[usize::from(b) % 62] += 1;
            }
        }
        let chi2 = chi_square(&counts);
        assert!(chi2 > 1_000.0, "biased sample passed: {chi2}");
    }

    fn chi_square(counts: &[u64]) -> f64 {
        let expected = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
        counts
            .iter()
            .map(|&c| (c as f64 - expected).powi(2) / expected)
            .sum()
    }

    #[test]
    fn no_collisions_in_a_million_draws() {
        let f = Format {
            checksum: false,
            length: MIN_LENGTH,
            ..Format::default()
        };
        let mut seen = HashSet::with_capacity(1_000_000);
        for _ in 0..1_000_000 {
            assert!(seen.insert(generate(&f).unwrap().0), "collision");
        }
    }

    #[test]
    fn fingerprint_is_short_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(fingerprint(b"abc"), "sha256:ba7816bf8f01");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
