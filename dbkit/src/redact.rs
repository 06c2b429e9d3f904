//! [`redact_url`]: a connection URL fit for logs and error messages.

/// `url` with the password of its user-info part replaced by `***`
/// (`postgres://hts:s3cret@db:5432/hts` → `postgres://hts:***@db:5432/hts`),
/// and a `password=` value of a key/value connection string too
/// (`host=db password=s3cret` → `host=db password=***`). URLs without a
/// password (`sqlite:PATH`, `redis://host`) are returned unchanged. Store
/// URLs may carry credentials and end up in start-up errors, which go to the
/// logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return redact_key_value(url);
    };
    let rest = &url[scheme_end..];
    // The authority ends at the first '/', '?' or '#'; user info before its last '@'.
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_len].rfind('@') else {
        return url.to_owned();
    };
    let userinfo = &rest[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}:***{}",
        &url[..scheme_end],
        &userinfo[..colon],
        &rest[at..]
    )
}

/// Masks the value of every `password=` pair of a key/value string.
fn redact_key_value(text: &str) -> String {
    text.split(' ')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            redact_url("postgres://hts:s3cret@db1:5432,db2:5432/hts?sslmode=require"),
            "postgres://hts:***@db1:5432,db2:5432/hts?sslmode=require"
        );
        assert_eq!(
            redact_url("redis://:p@ss@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redact_url("host=db user=hts password=s3cret dbname=hts"),
            "host=db user=hts password=*** dbname=hts"
        );
        for unchanged in [
            "sqlite:/var/lib/hts/orders.db",
            "postgres://hts@db/hts",
            "postgres://db/hts?user=a@b",
            "redis://cache:6379",
        ] {
            assert_eq!(redact_url(unchanged), unchanged);
        }
    }
}
