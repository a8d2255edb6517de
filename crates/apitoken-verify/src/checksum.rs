//! The CRC32 checksum that apitoken-operator appends to a value: the CRC32 of everything before
//! it (prefix and random part), written as fixed-width digits of the value's own alphabet.
//! Scanners and servers use it to reject look-alikes without a lookup.

/// The characters a value is drawn from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alphabet {
    /// `0-9 A-Z a-z`.
    Base62,
    /// `0-9 a-f`.
    Hex,
    /// `A-Z a-z 0-9 - _`.
    Base64url,
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Alphabet {
    pub const ALL: [Alphabet; 3] = [Alphabet::Base62, Alphabet::Hex, Alphabet::Base64url];

    /// The characters, in digit order.
    pub fn chars(self) -> &'static [u8] {
        match self {
            Self::Base62 => BASE62,
            Self::Hex => HEX,
            Self::Base64url => BASE64URL,
        }
    }

    /// Digits needed to write any u32: ceil(32 / log2(size)).
    pub fn checksum_width(self) -> usize {
        match self {
            Self::Base62 | Self::Base64url => 6,
            Self::Hex => 8,
        }
    }
}

/// The checksum digits for `body` (prefix and random part).
pub fn encode(body: &[u8], alphabet: Alphabet) -> String {
    digits(crc32fast::hash(body), alphabet)
}

fn digits(mut value: u32, alphabet: Alphabet) -> String {
    let chars = alphabet.chars();
    let base = chars.len() as u32;
    let mut digits = vec![chars[0]; alphabet.checksum_width()];
    for slot in digits.iter_mut().rev() {
        *slot = chars[(value % base) as usize];
        value /= base;
    }
    String::from_utf8(digits).expect("alphabets are ASCII")
}

/// True when `value` ends with the checksum of the rest, written in `alphabet`.
pub fn ends_with_checksum(value: &str, alphabet: Alphabet) -> bool {
    let width = alphabet.checksum_width();
    value.len() > width && value.is_char_boundary(value.len() - width) && {
        let (body, sum) = value.split_at(value.len() - width);
        encode(body.as_bytes(), alphabet) == sum
    }
}

/// The alphabet whose checksum `value` carries, if any. Which alphabet a value uses need not be
/// known: a random string passes by chance with a probability of about 3 in 2^32.
pub fn carried_by(value: &str) -> Option<Alphabet> {
    Alphabet::ALL
        .into_iter()
        .find(|&a| ends_with_checksum(value, a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checksum_alone_is_no_value() {
        for alphabet in Alphabet::ALL {
            let empty = encode(b"", alphabet);
            assert!(!ends_with_checksum(&empty, alphabet), "{alphabet:?}");
            let one = format!("a{}", encode(b"a", alphabet));
            assert!(ends_with_checksum(&one, alphabet), "{alphabet:?}");
        }
    }

    #[test]
    fn encodes_known_values() {
        // CRC32("abc") = 0x352441C2 = 891568578.
        assert_eq!(crc32fast::hash(b"abc"), 891_568_578);
        assert_eq!(encode(b"abc", Alphabet::Hex), "352441c2");
        // 891568578 in base 62 with 6 digits (checked with Python).
        assert_eq!(encode(b"abc", Alphabet::Base62), "0yKviM");
        assert_eq!(encode(b"abc", Alphabet::Base64url), "A1JEHC");
    }

    #[test]
    fn digits_cover_the_full_u32_range() {
        for alphabet in Alphabet::ALL {
            let chars = alphabet.chars();
            assert_ne!(digits(u32::MAX, alphabet), digits(u32::MAX - 1, alphabet));
            // Decoding the fixed-width digits gives back the value: the width is large enough.
            let decode = |s: &str| {
                s.bytes().fold(0u64, |acc, c| {
                    acc * chars.len() as u64 + chars.iter().position(|&x| x == c).unwrap() as u64
                })
            };
            for v in [0, 1, 12345, u32::MAX] {
                assert_eq!(decode(&digits(v, alphabet)), u64::from(v));
            }
        }
    }

    #[test]
    fn a_value_carries_its_own_checksum_and_no_single_edit_passes() {
        for alphabet in Alphabet::ALL {
            let body = "ak_0123456789abcdef0123456789abcdef";
            let value = format!("{body}{}", encode(body.as_bytes(), alphabet));
            assert!(ends_with_checksum(&value, alphabet));
            assert_eq!(carried_by(&value), Some(alphabet));
            let bytes = value.as_bytes();
            for i in 0..bytes.len() {
                let mut edited = bytes.to_vec();
                let chars = alphabet.chars();
                let pos = chars.iter().position(|&c| c == bytes[i]).unwrap_or(0);
                edited[i] = chars[(pos + 1) % chars.len()];
                let edited = String::from_utf8(edited).unwrap();
                assert!(!ends_with_checksum(&edited, alphabet), "{edited}");
            }
        }
    }

    #[test]
    fn short_or_multibyte_values_never_pass() {
        assert_eq!(carried_by(""), None);
        assert_eq!(carried_by("0yKviM"), None);
        assert_eq!(carried_by("ab€cdefgh"), None);
    }
}
