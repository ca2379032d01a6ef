//! htpasswd files and `auth-map` hashes: recognised into typed hashes, without
//! quoting hash material in errors or `Debug`. [`PasswordHash::verify`] (in
//! [`crate::auth::password`]) checks a password against one.

use std::fmt;

use base64::Engine as _;

use crate::annotations::values;

/// One user of an htpasswd file or `auth-map` Secret.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HtpasswdEntry {
    /// The user name.
    pub user: String,
    /// The password hash.
    pub hash: PasswordHash,
}

/// bcrypt's version tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BcryptVersion {
    /// `$2a$`.
    A,
    /// `$2b$`.
    B,
    /// `$2y$`.
    Y,
}

/// A password hash as htpasswd (or nginx's `auth_basic_user_file`) accepts it.
/// `Debug` shows the scheme only, never hash material.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PasswordHash {
    /// `{SHA}` + base64 of the SHA-1 digest of the password.
    Sha1([u8; 20]),
    /// `{SSHA}` + base64 of the SHA-1 digest of the password and salt, then the salt.
    Ssha {
        /// The SHA-1 digest of password + salt.
        digest: [u8; 20],
        /// The salt (any length, often 4 or 8 bytes).
        salt: Vec<u8>,
    },
    /// `{PLAIN}` + the password itself (nginx accepts it; avoid).
    Plain(String),
    /// `$1$<salt>$<hash>`: the MD5 crypt of glibc (same algorithm as `$apr1$`).
    Md5Crypt {
        /// Salt, 1..8 characters.
        salt: String,
        /// 22 characters of crypt base64.
        hash: String,
    },
    /// `$apr1$<salt>$<hash>`: Apache's MD5 crypt.
    Apr1 {
        /// Salt, 1..8 characters.
        salt: String,
        /// 22 characters of crypt base64.
        hash: String,
    },
    /// `$2a$` / `$2b$` / `$2y$` bcrypt.
    Bcrypt {
        /// The version tag.
        version: BcryptVersion,
        /// The cost, 4..31.
        cost: u8,
        /// 22 characters of bcrypt base64.
        salt: String,
        /// 31 characters of bcrypt base64.
        hash: String,
    },
    /// 13-character traditional DES crypt.
    Crypt {
        /// 2 characters.
        salt: String,
        /// 11 characters.
        hash: String,
    },
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PasswordHash::Sha1(_) => "PasswordHash::Sha1(..)",
            PasswordHash::Ssha { .. } => "PasswordHash::Ssha(..)",
            PasswordHash::Plain(_) => "PasswordHash::Plain(..)",
            PasswordHash::Md5Crypt { .. } => "PasswordHash::Md5Crypt(..)",
            PasswordHash::Apr1 { .. } => "PasswordHash::Apr1(..)",
            PasswordHash::Bcrypt { .. } => "PasswordHash::Bcrypt(..)",
            PasswordHash::Crypt { .. } => "PasswordHash::Crypt(..)",
        })
    }
}

fn crypt64(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

impl PasswordHash {
    /// Recognise one hash. Errors never quote the hash.
    pub fn parse(s: &str) -> Result<PasswordHash, String> {
        if let Some(b64) = s.strip_prefix("{SHA}") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| "a {SHA} hash must be base64".to_string())?;
            let digest: [u8; 20] = bytes
                .try_into()
                .map_err(|_| "a {SHA} hash must hold 20 bytes".to_string())?;
            return Ok(PasswordHash::Sha1(digest));
        }
        if let Some(b64) = s.strip_prefix("{SSHA}") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| "a {SSHA} hash must be base64".to_string())?;
            if bytes.len() <= 20 {
                return Err("a {SSHA} hash must hold 20 bytes and a salt".into());
            }
            let (digest, salt) = bytes.split_at(20);
            let mut d = [0u8; 20];
            d.copy_from_slice(digest);
            return Ok(PasswordHash::Ssha {
                digest: d,
                salt: salt.to_vec(),
            });
        }
        if let Some(p) = s.strip_prefix("{PLAIN}") {
            return Ok(PasswordHash::Plain(p.to_owned()));
        }
        for magic in ["$apr1$", "$1$"] {
            let Some(rest) = s.strip_prefix(magic) else {
                continue;
            };
            let (salt, hash) = rest
                .split_once('$')
                .ok_or_else(|| format!("an {magic} hash is `{magic}<salt>$<hash>`"))?;
            if salt.is_empty()
                || salt.len() > 8
                || !crypt64(salt)
                || hash.len() != 22
                || !crypt64(hash)
            {
                return Err(format!(
                    "an {magic} hash has a salt of 1 to 8 and a hash of 22 crypt characters"
                ));
            }
            let (salt, hash) = (salt.into(), hash.into());
            return Ok(if magic == "$1$" {
                PasswordHash::Md5Crypt { salt, hash }
            } else {
                PasswordHash::Apr1 { salt, hash }
            });
        }
        for (tag, version) in [
            ("$2a$", BcryptVersion::A),
            ("$2b$", BcryptVersion::B),
            ("$2y$", BcryptVersion::Y),
        ] {
            if let Some(rest) = s.strip_prefix(tag) {
                let bad = || "a bcrypt hash is `$2y$<cost 04..31>$<53 characters>`".to_string();
                let (cost, body) = rest.split_once('$').ok_or_else(bad)?;
                let cost = match (cost.len(), values::uint_max(cost, 31)) {
                    (2, Ok(c)) if c >= 4 => c as u8,
                    _ => return Err(bad()),
                };
                if body.len() != 53 || !crypt64(body) {
                    return Err(bad());
                }
                let (salt, hash) = body.split_at(22);
                return Ok(PasswordHash::Bcrypt {
                    version,
                    cost,
                    salt: salt.into(),
                    hash: hash.into(),
                });
            }
        }
        if s.len() == 13 && crypt64(s) {
            let (salt, hash) = s.split_at(2);
            return Ok(PasswordHash::Crypt {
                salt: salt.into(),
                hash: hash.into(),
            });
        }
        Err(
            "not a recognised hash ({SHA}, {SSHA}, {PLAIN}, $apr1$, $1$, $2a$/$2b$/$2y$ bcrypt or 13-character crypt)"
                .into(),
        )
    }
}

/// Parse htpasswd text: `user:hash[:comment]` per line; blank lines and `#`
/// comments skipped. A user listed twice, an unrecognised hash or a file without
/// users is an error (messages name the line and user, never the hash).
pub fn parse_htpasswd(text: &str) -> Result<Vec<HtpasswdEntry>, String> {
    let mut out: Vec<HtpasswdEntry> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = n + 1;
        let (user, rest) = line
            .split_once(':')
            .ok_or_else(|| format!("line {n}: expected `user:hash`"))?;
        if user.is_empty() || user.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "line {n}: the user name is empty or holds spaces or control characters"
            ));
        }
        if out.iter().any(|e| e.user == user) {
            return Err(format!("line {n}: user `{user}` is listed twice"));
        }
        let hash = rest.split(':').next().unwrap_or_default();
        let hash =
            PasswordHash::parse(hash).map_err(|e| format!("line {n} (user `{user}`): {e}"))?;
        out.push(HtpasswdEntry {
            user: user.into(),
            hash,
        });
    }
    if out.is_empty() {
        return Err("no user is listed".into());
    }
    Ok(out)
}

/// One user of an htdigest file (digest authentication). `Debug` never shows
/// the hash.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DigestEntry {
    /// The user name.
    pub user: String,
    /// The realm the hash was made for.
    pub realm: String,
    /// HA1 = MD5(user:realm:password).
    pub ha1: [u8; 16],
}

impl fmt::Debug for DigestEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestEntry")
            .field("user", &self.user)
            .field("realm", &self.realm)
            .field("ha1", &"..")
            .finish()
    }
}

/// Parse htdigest text: `user:realm:HA1` per line (HA1 as 32 hex digits);
/// blank lines and `#` comments skipped. A user listed twice in one realm, a bad
/// line or a file without users is an error (messages name the line and user,
/// never the hash).
pub fn parse_htdigest(text: &str) -> Result<Vec<DigestEntry>, String> {
    let mut out: Vec<DigestEntry> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let n = n + 1;
        let mut parts = line.splitn(3, ':');
        let (Some(user), Some(realm), Some(hash)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("line {n}: expected `user:realm:HA1`"));
        };
        if user.is_empty() || user.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!(
                "line {n}: the user name is empty or holds spaces or control characters"
            ));
        }
        if out.iter().any(|e| e.user == user && e.realm == realm) {
            return Err(format!(
                "line {n}: user `{user}` is listed twice in its realm"
            ));
        }
        let bytes = hash.as_bytes();
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut ha1 = [0u8; 16];
        let ok = bytes.len() == 32
            && ha1.iter_mut().enumerate().all(|(i, o)| {
                match (digit(bytes[2 * i]), digit(bytes[2 * i + 1])) {
                    (Some(h), Some(l)) => {
                        *o = h << 4 | l;
                        true
                    }
                    _ => false,
                }
            });
        if !ok {
            return Err(format!(
                "line {n} (user `{user}`): the hash must be 32 hex digits (htdigest's MD5)"
            ));
        }
        out.push(DigestEntry {
            user: user.into(),
            realm: realm.into(),
            ha1,
        });
    }
    if out.is_empty() {
        return Err("no user is listed".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htdigest_lines() {
        // htdigest -c file testrealm@host.com Mufasa ("Circle Of Life")
        let e = parse_htdigest(
            "# users\nMufasa:testrealm@host.com:939e7578ed9e3c518a452acee763bce9\n\nbob:other:939E7578ED9E3C518A452ACEE763BCE9\n",
        )
        .expect("valid");
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].user.as_str(), e[0].realm.as_str()),
            ("Mufasa", "testrealm@host.com")
        );
        assert_eq!(e[0].ha1, e[1].ha1);
        assert_eq!(e[0].ha1[0], 0x93);
        assert!(!format!("{:?}", e[0]).contains("939e"));
        for (text, needle) in [
            ("", "no user"),
            ("alice:realm", "user:realm:HA1"),
            ("alice:realm:abc", "32 hex"),
            ("alice:realm:939e7578ed9e3c518a452acee763bcez", "32 hex"),
            (":realm:939e7578ed9e3c518a452acee763bce9", "user name"),
            (
                "a:r:939e7578ed9e3c518a452acee763bce9\na:r:939e7578ed9e3c518a452acee763bce9",
                "twice",
            ),
        ] {
            let err = parse_htdigest(text).expect_err(text);
            assert!(err.contains(needle), "{text:?}: {err}");
            assert!(!err.contains("939e"), "{err}");
        }
    }

    const SHA: &str = "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=";
    const APR1: &str = "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/";
    const BCRYPT: &str = "$2y$05$c4WoMPo3SXsafkva.HHa6uXQZWr7oboPiC2bT/r7q1BB8I2s0BRqC";
    const CRYPT: &str = "abJnggxhB/yWI";

    #[test]
    fn recognises_each_scheme() {
        let text = format!(
            "# users\nalice:{SHA}\r\n\nbob:{APR1}:a comment\ncarol:{BCRYPT}\ndave:{CRYPT}\n"
        );
        let e = parse_htpasswd(&text).expect("valid");
        let users: Vec<&str> = e.iter().map(|e| e.user.as_str()).collect();
        assert_eq!(users, ["alice", "bob", "carol", "dave"]);
        assert!(matches!(e[0].hash, PasswordHash::Sha1(d) if d[0] == 0x5b));
        assert!(matches!(&e[1].hash, PasswordHash::Apr1 { salt, .. } if salt == "r31....."));
        assert!(matches!(
            &e[2].hash,
            PasswordHash::Bcrypt { version: BcryptVersion::Y, cost: 5, salt, hash } if salt.len() == 22 && hash.len() == 31
        ));
        assert!(matches!(&e[3].hash, PasswordHash::Crypt { salt, .. } if salt == "ab"));
        for v in ["$2a$", "$2b$"] {
            let h = BCRYPT.replacen("$2y$", v, 1);
            assert!(matches!(
                PasswordHash::parse(&h),
                Ok(PasswordHash::Bcrypt { .. })
            ));
        }
    }

    #[test]
    fn rejects_without_quoting_hashes() {
        for (text, needle) in [
            ("", "no user"),
            ("# only a comment\n", "no user"),
            ("alice", "user:hash"),
            (":{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "user name"),
            ("al ice:abJnggxhB/yWI", "user name"),
            ("alice:abJnggxhB/yWI\nalice:abJnggxhB/yWI", "twice"),
            ("alice:plaintext", "recognised"),
            ("alice:{SHA}not-base64!", "base64"),
            ("alice:{SHA}YWJj", "20 bytes"),
            ("alice:$apr1$toolongsalt$HqJZimcKQFAMYayBlzkrA/", "apr1"),
            ("alice:$apr1$r31$short", "apr1"),
            (
                "alice:$2y$3$c4WoMPo3SXsafkva.HHa6uXQZWr7oboPiC2bT/r7q1BB8I2s0BRqC",
                "bcrypt",
            ),
            (
                "alice:$2y$32$c4WoMPo3SXsafkva.HHa6uXQZWr7oboPiC2bT/r7q1BB8I2s0BRqC",
                "bcrypt",
            ),
            ("alice:$2y$05$short", "bcrypt"),
            (
                "alice:$2x$05$c4WoMPo3SXsafkva.HHa6uXQZWr7oboPiC2bT/r7q1BB8I2s0BRqC",
                "recognised",
            ),
            ("alice:$6$salt$hash", "recognised"),
        ] {
            let e = parse_htpasswd(text).expect_err(text);
            assert!(e.contains(needle), "{text:?}: {e}");
            assert!(
                !e.contains("HqJZ") && !e.contains("c4Wo") && !e.contains("plaintext"),
                "{e}"
            );
        }
        let e = parse_htpasswd("alice:abJnggxhB/yWI\nbob:nope").expect_err("bad hash");
        assert!(e.starts_with("line 2 (user `bob`)"), "{e}");
        let h = PasswordHash::parse(BCRYPT).expect("bcrypt");
        assert_eq!(format!("{h:?}"), "PasswordHash::Bcrypt(..)");
    }
}
