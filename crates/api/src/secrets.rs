//! The SIP password in the OS keychain (Secret Service on Linux, Credential Manager on
//! Windows, Keychain on macOS), never in files or logs. Keychain calls block, and a locked
//! keyring can wait for a GUI prompt forever: each call runs on a blocking thread with a
//! timeout and fails with a message the agent or IT can act on.

use std::time::Duration;

/// The keychain's service name for Homeagent's entries.
pub const KEYCHAIN_SERVICE: &str = "homeagent";
const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error(
        "no OS keychain is available ({0}); start the desktop's keyring (Secret Service) or set HOMEAGENT_PASSWORD"
    )]
    NoKeychain(String),
    #[error("the OS keychain did not answer within {0:?} (is it locked?)")]
    Timeout(Duration),
    #[error("OS keychain: {0}")]
    Keychain(String),
}

/// The keychain entry name of an account: `user@registrar-host`.
pub fn account_key(user: &str, registrar: &str) -> String {
    format!("{user}@{}", crate::party_number(registrar))
}

/// The stored password of `account`, `None` when there is none.
pub async fn load_password(account: &str) -> Result<Option<String>, SecretError> {
    let account = account.to_owned();
    with_keychain(move || {
        let entry = keyring::Entry::new(KEYCHAIN_SERVICE, &account).map_err(classify)?;
        match entry.get_password() {
            Ok(password) => Ok(Some(password)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(error) => Err(classify(error)),
        }
    })
    .await
}

/// Stores (or with an empty `password`, deletes) the password of `account`.
pub async fn store_password(account: &str, password: &str) -> Result<(), SecretError> {
    let (account, password) = (account.to_owned(), password.to_owned());
    with_keychain(move || {
        let entry = keyring::Entry::new(KEYCHAIN_SERVICE, &account).map_err(classify)?;
        if password.is_empty() {
            return match entry.delete_credential() {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(error) => Err(classify(error)),
            };
        }
        entry.set_password(&password).map_err(classify)
    })
    .await
}

async fn with_keychain<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SecretError> + Send + 'static,
) -> Result<T, SecretError> {
    // A hung keychain call keeps its thread; the caller moves on.
    match tokio::time::timeout(KEYCHAIN_TIMEOUT, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(SecretError::Keychain(join.to_string())),
        Err(_) => Err(SecretError::Timeout(KEYCHAIN_TIMEOUT)),
    }
}

fn classify(error: keyring::Error) -> SecretError {
    match error {
        keyring::Error::NoDefaultStore | keyring::Error::PlatformFailure(_) => {
            SecretError::NoKeychain(error.to_string())
        }
        other => SecretError::Keychain(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_keys_name_the_user_and_the_platform() {
        assert_eq!(
            account_key("agent01", "sip:sbc.example.com:5060;transport=tcp"),
            "agent01@sbc.example.com:5060"
        );
    }

    /// Without a D-Bus session (CI, a server) there is no keychain: a clear error, quickly,
    /// never a hang or a panic. With one (a desktop), a round trip.
    #[tokio::test]
    async fn missing_keychain_is_a_clear_error_and_a_present_one_round_trips() {
        let account = format!("homeagent-test-{}@example.invalid", std::process::id());
        let started = std::time::Instant::now();
        match store_password(&account, "s3cret").await {
            Ok(()) => {
                assert_eq!(load_password(&account).await, Ok(Some("s3cret".to_owned())));
                store_password(&account, "").await.expect("delete");
                assert_eq!(load_password(&account).await, Ok(None));
            }
            Err(error) => {
                let text = error.to_string();
                assert!(text.contains("keychain"), "{text}");
                assert!(started.elapsed() <= KEYCHAIN_TIMEOUT + Duration::from_secs(1));
                assert!(load_password(&account).await.is_err());
            }
        }
    }
}
