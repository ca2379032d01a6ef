//! Password verification for the hashes htpasswd and nginx's
//! `auth_basic_user_file` accept: bcrypt (`$2a$`, `$2b$`, `$2y$`), `{SHA}`,
//! `{SSHA}`, `{PLAIN}`, Apache's `$apr1$` and glibc's `$1$` MD5 crypt.
//!
//! Every comparison of a computed hash with the stored one is constant-time
//! ([`subtle`]). Traditional 13-character DES crypt is recognised but never
//! verifies (it keeps only 8 characters of the password and is not implemented):
//! such a user cannot log in. bcrypt is deliberately slow (milliseconds at cost
//! 5, about 250 ms at cost 12): see [`PasswordHash::is_slow`].

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use md5::{Digest as _, Md5};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use crate::annotations::auth::PasswordHash;

/// bcrypt's own base64 (`./A-Za-z0-9`, no padding).
const BCRYPT64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::BCRYPT,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// The alphabet of crypt(3)'s base64.
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

impl PasswordHash {
    /// Whether `password` matches this hash. Never panics; the final comparison is
    /// constant-time.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            PasswordHash::Sha1(digest) => Sha1::digest(password).as_slice().ct_eq(digest).into(),
            PasswordHash::Ssha { digest, salt } => {
                let mut h = Sha1::new();
                h.update(password);
                h.update(salt);
                h.finalize().as_slice().ct_eq(digest).into()
            }
            PasswordHash::Plain(p) => p.as_bytes().ct_eq(password).into(),
            PasswordHash::Apr1 { salt, hash } => md5_crypt(password, salt.as_bytes(), b"$apr1$")
                .ct_eq(hash.as_bytes())
                .into(),
            PasswordHash::Md5Crypt { salt, hash } => md5_crypt(password, salt.as_bytes(), b"$1$")
                .ct_eq(hash.as_bytes())
                .into(),
            PasswordHash::Bcrypt {
                cost, salt, hash, ..
            } => bcrypt_verify(*cost, salt, hash, password),
            PasswordHash::Crypt { .. } => false,
        }
    }

    /// Whether verifying costs more than a few microseconds (bcrypt): a server
    /// should verify such hashes off its event loop.
    pub fn is_slow(&self) -> bool {
        matches!(self, PasswordHash::Bcrypt { .. })
    }
}

fn bcrypt_verify(cost: u8, salt: &str, hash: &str, password: &[u8]) -> bool {
    let Ok(salt) = BCRYPT64.decode(salt) else {
        return false;
    };
    let Ok(salt): Result<[u8; 16], _> = salt.try_into() else {
        return false;
    };
    if !(4..=31).contains(&cost) {
        return false;
    }
    // As OpenBSD and the bcrypt crate do: the password with its NUL terminator, at
    // most 72 bytes.
    let mut key: Vec<u8> = password.iter().copied().take(72).collect();
    if key.len() < 72 {
        key.push(0);
    }
    let out = bcrypt::bcrypt(u32::from(cost), salt, &key);
    key.iter_mut().for_each(|b| *b = 0);
    let computed = BCRYPT64.encode(&out[..23]);
    computed.as_bytes().ct_eq(hash.as_bytes()).into()
}

/// The 22-character hash part of MD5 crypt (`$1$`, Apache's `$apr1$`).
fn md5_crypt(pw: &[u8], salt: &[u8], magic: &[u8]) -> Vec<u8> {
    let salt = &salt[..salt.len().min(8)];
    let mut ctx = Md5::new();
    ctx.update(pw);
    ctx.update(magic);
    ctx.update(salt);
    let mut alt = Md5::new();
    alt.update(pw);
    alt.update(salt);
    alt.update(pw);
    let alt = alt.finalize();
    let mut left = pw.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin: [u8; 16] = ctx.finalize().into();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(pw);
        } else {
            c.update(fin);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(pw);
        }
        if round & 1 == 1 {
            c.update(fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize().into();
    }
    let mut out = Vec::with_capacity(22);
    let mut put = |v: u32, n: usize| {
        let mut v = v;
        for _ in 0..n {
            out.push(ITOA64[(v & 0x3f) as usize]);
            v >>= 6;
        }
    };
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        put(
            (u32::from(fin[a]) << 16) | (u32::from(fin[b]) << 8) | u32::from(fin[c]),
            4,
        );
    }
    put(u32::from(fin[11]), 2);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(hash: &str, good: &[u8], bad: &[&[u8]]) {
        let h = PasswordHash::parse(hash).expect(hash);
        assert!(h.verify(good), "{hash} should accept its password");
        for b in bad {
            assert!(!h.verify(b), "{hash} accepted {b:?}");
        }
    }

    // Vectors made with `htpasswd` (apache2-utils 2.4) and `openssl passwd`.
    #[test]
    fn htpasswd_vectors() {
        check(
            "$apr1$FpD1wUQG$Km7KDahdOB7Kb1a.LrDgZ1",
            b"secret",
            &[b"Secret", b"", b"secret "],
        );
        check(
            "$apr1$TcKdXwoi$FvxNAHhZ5d2mfwm1iYpCQ1",
            "pässwörd with spaces:and colon".as_bytes(),
            &[b"p"],
        );
        check("$apr1$SRKP2O2C$0fwfi/zgaFMosDJyhazH7.", b"", &[b"x"]);
        check(
            "$apr1$r31.....$G/cElGhD0cboYkZN5h5Ne/",
            b"secret",
            &[b"secreT"],
        );
        check(
            "$1$saltsalt$9xy1btjgzLYfb7hivXtC//",
            b"secret",
            &[b"secret1"],
        );
        check("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", b"secret", &[b"secre"]);
        check(
            "{SSHA}uJDd0BIdJ9Z7yDCZNWdgYeb33+cBAgME",
            b"secret",
            &[b"secret\x01"],
        );
        check("{PLAIN}plain", b"plain", &[b"plai", b"plainx"]);
        check(
            "$2y$05$J3afQQUv6l8u4Qi1oOMCK.jcqDgAdFjkI0vgqslK.KNMqqKUzb8bi",
            b"secret",
            &[b"secret2", b""],
        );
        check(
            "$2y$04$jKrnOTPqb18NZYA0Qo9rkuUIzRmgZD/Re10/CqvzQMp/KnG8rp5/2",
            b"hunter2",
            &[b"hunter"],
        );
        // $2a$/$2b$ are the same computation for these passwords.
        check(
            "$2b$04$jKrnOTPqb18NZYA0Qo9rkuUIzRmgZD/Re10/CqvzQMp/KnG8rp5/2",
            b"hunter2",
            &[],
        );
        // DES crypt is recognised, never verified.
        let h = PasswordHash::parse("abJnggxhB/yWI").expect("crypt");
        assert!(!h.verify(b"secret") && !h.is_slow());
        assert!(
            PasswordHash::parse("$2y$04$jKrnOTPqb18NZYA0Qo9rkuUIzRmgZD/Re10/CqvzQMp/KnG8rp5/2")
                .is_ok_and(|h| h.is_slow())
        );
    }

    #[test]
    fn long_and_odd_passwords_never_panic() {
        let h = PasswordHash::parse("$2y$04$jKrnOTPqb18NZYA0Qo9rkuUIzRmgZD/Re10/CqvzQMp/KnG8rp5/2")
            .expect("bcrypt");
        assert!(!h.verify(&[0xff; 500]));
        assert!(!h.verify(&[0; 72]));
        let h = PasswordHash::parse("$apr1$FpD1wUQG$Km7KDahdOB7Kb1a.LrDgZ1").expect("apr1");
        assert!(!h.verify(&[0xff; 5000]));
    }
}
