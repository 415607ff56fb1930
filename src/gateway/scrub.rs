//! Removing credentials from what upstreams say before a caller reads it. Providers echo
//! the key they were sent in their errors: OpenAI's 401 reads "Incorrect API key provided:
//! sk-proj-****…abcd", showing its first and last characters. The gateway quotes upstream
//! messages to callers (they say what to fix), so every such message passes through here.

/// What replaces a token that is, or looks like, a credential.
pub const REDACTED: &str = "[redacted]";

/// Shortest run of the credential's first or last characters treated as an echo of it.
const ECHO: usize = 4;

/// `text` with every whitespace-separated token that carries `credential` (in full, or its
/// first or last few characters, as providers echo them) or that looks like an API key
/// replaced by [`REDACTED`].
pub fn scrub(text: &str, credential: Option<&str>) -> String {
    let secret = credential
        .map(|c| c.strip_prefix("Bearer ").unwrap_or(c).trim())
        .filter(|c| c.len() >= 2 * ECHO);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let start = rest
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let token = &rest[..end];
        if leaks(token, secret) {
            // Keep the sentence's punctuation around the token.
            let core = token.trim_matches(|c: char| !c.is_alphanumeric() && c != '*');
            match token.find(core) {
                Some(at) if !core.is_empty() => {
                    out.push_str(&token[..at]);
                    out.push_str(REDACTED);
                    out.push_str(&token[at + core.len()..]);
                }
                _ => out.push_str(REDACTED),
            }
        } else {
            out.push_str(token);
        }
        rest = &rest[end..];
    }
    out
}

fn leaks(token: &str, secret: Option<&str>) -> bool {
    if let Some(s) = secret {
        let core = token.trim_matches(|c: char| !c.is_alphanumeric());
        // The whole key, its first characters, or its last ones.
        if token.contains(s)
            || (core.len() >= 2 * ECHO && s.starts_with(core))
            || s.ends_with(tail(token))
        {
            return true;
        }
    }
    looks_like_key(token)
}

/// The token without trailing punctuation, its last `ECHO` characters at most.
fn tail(token: &str) -> &str {
    let t = token.trim_end_matches(|c: char| !c.is_alphanumeric());
    let at = t
        .char_indices()
        .rev()
        .nth(ECHO - 1)
        .map_or(t.len(), |(i, _)| i);
    if t.len() - at < ECHO {
        "\u{0}"
    } else {
        &t[at..]
    }
}

/// Keys of the common providers (`sk-…`, `sk-ant-…`, `sk_…`), masked echoes (`****`), and
/// bearer tokens.
fn looks_like_key(token: &str) -> bool {
    let t = token.trim_matches(|c: char| !c.is_alphanumeric() && c != '*');
    let lower = t.to_ascii_lowercase();
    (t.len() >= 8 && (lower.starts_with("sk-") || lower.starts_with("sk_")))
        || t.contains("***")
        || (t.len() >= 32
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openais_401_loses_the_echoed_key_and_keeps_its_advice() {
        let key = "sk-proj-AbCdEfGh0123456789wxyz";
        let msg = "Incorrect API key provided: sk-proj-****************************wxyz. You can find your API key at https://platform.openai.com/account/api-keys.";
        let out = scrub(msg, Some(&format!("Bearer {key}")));
        assert_eq!(
            out,
            "Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com/account/api-keys."
        );
    }

    #[test]
    fn the_key_itself_its_ends_and_key_shaped_tokens_go() {
        let key = "k3y-0123456789-ABCDEFGH";
        for (msg, want) in [
            (
                format!("bad key '{key}' given"),
                "bad key '[redacted]' given".to_owned(),
            ),
            (
                "key ends in ...EFGH, check it".to_owned(),
                "key ends in ...[redacted], check it".to_owned(),
            ),
            (
                "key k3y-01234 was revoked".to_owned(),
                "key [redacted] was revoked".to_owned(),
            ),
            (
                "invalid x-api-key sk-ant-api03-zzzz".to_owned(),
                "invalid x-api-key [redacted]".to_owned(),
            ),
        ] {
            assert_eq!(scrub(&msg, Some(key)), want, "{msg}");
        }
    }

    #[test]
    fn ordinary_messages_pass_unchanged() {
        for msg in [
            "The model `gpt-5` does not exist or you do not have access to it.",
            "max_tokens: 100000 > 8192, which is the maximum allowed",
            "Overloaded",
            "Rate limit reached for gpt-4o in organization org-123 on tokens per min (TPM): Limit 30000, Used 29000.",
        ] {
            assert_eq!(scrub(msg, Some("sk-secret-value-1234")), msg);
            assert_eq!(scrub(msg, None), msg);
        }
    }
}
