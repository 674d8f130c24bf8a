//! `*_FILE` variables: a secret's value read from a file, as Kubernetes and
//! Docker mount them. Only one trailing line break is removed.

use std::path::Path;

use secrecy::SecretString;

use super::ConfigError;

/// Reads the secret in `path` for the variable `var`; errors name `var` and
/// the path, never the content.
pub fn read_secret_file(var: &'static str, path: &Path) -> Result<SecretString, ConfigError> {
    let mut value = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
        var,
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    if value.ends_with('\n') {
        value.pop();
        if value.ends_with('\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(ConfigError::Invalid {
            var,
            reason: format!("{} is empty", path.display()),
        });
    }
    Ok(SecretString::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use std::io::Write;

    #[test]
    fn one_trailing_newline_is_removed() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"s3cr3t value\r\n").unwrap();
        let value = read_secret_file("X_FILE", file.path()).unwrap();
        assert_eq!(value.expose_secret(), "s3cr3t value");
    }

    #[test]
    fn a_missing_file_names_the_variable_and_path() {
        let err =
            read_secret_file("POSTGRES_PASSWORD_FILE", Path::new("/nonexistent/pw")).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("POSTGRES_PASSWORD_FILE: cannot read /nonexistent/pw"),
            "{message}"
        );
    }

    #[test]
    fn an_empty_file_is_an_error() {
        let file = tempfile::NamedTempFile::new().unwrap();
        assert!(read_secret_file("X_FILE", file.path()).is_err());
    }
}
