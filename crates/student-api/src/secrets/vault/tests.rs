//! The Vault source against a stub Vault (wiremock on loopback): each
//! refresh is driven by hand (`step` once a deadline is made due), so the
//! whole state machine runs in milliseconds. Tokens and passwords are made
//! at run time.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::time::Instant;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockBuilder, MockServer, Request, ResponseTemplate};

use super::*;
use crate::credentials::testing::target;
use crate::credentials::StubLogin;

const ROLE: &str = "database/creds/student-api";

fn secret() -> String {
    format!("s-{}", uuid::Uuid::new_v4().simple())
}

fn lease_id(n: u32) -> String {
    format!("{ROLE}/lease-{n}")
}

fn config(server: &MockServer, auth: VaultAuth, secret: VaultSecret) -> VaultConfig {
    VaultConfig {
        addr: server.uri().parse().unwrap(),
        ca_cert: None,
        auth,
        secret,
        timeout: Duration::from_secs(2),
    }
}

fn dynamic() -> VaultSecret {
    VaultSecret::Dynamic {
        path: ROLE.to_owned(),
    }
}

/// `GET auth/token/lookup-self` for a fixed token.
async fn token_lookup(server: &MockServer, ttl: u64) {
    Mock::given(method("GET"))
        .and(path("/v1/auth/token/lookup-self"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": { "ttl": ttl, "renewable": true }
        })))
        .mount(server)
        .await;
}

/// The `n`th database user, issued once.
async fn issue_user(server: &MockServer, n: u32, ttl: u64) {
    Mock::given(method("GET"))
        .and(path(format!("/v1/{ROLE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "lease_id": lease_id(n),
            "lease_duration": ttl,
            "renewable": true,
            "data": { "username": format!("v-user-{n}"), "password": secret() }
        })))
        .up_to_n_times(1)
        .mount(server)
        .await;
}

fn renewed(ttl: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "lease_id": lease_id(1), "lease_duration": ttl, "renewable": true
    }))
}

fn refused() -> ResponseTemplate {
    ResponseTemplate::new(403)
        .set_body_json(json!({ "errors": ["1 error occurred:\n\t* permission denied\n\n"] }))
}

fn sealed() -> ResponseTemplate {
    ResponseTemplate::new(503).set_body_json(json!({ "errors": ["Vault is sealed"] }))
}

/// Lease renewal in the URL form (`sys/leases/renew/<lease_id>`).
fn renew_url(n: u32) -> MockBuilder {
    Mock::given(method("PUT")).and(path(format!("/v1/sys/leases/renew/{}", lease_id(n))))
}

/// Lease renewal in the body form (`sys/leases/renew`).
fn renew_body(n: u32) -> MockBuilder {
    Mock::given(method("PUT"))
        .and(path("/v1/sys/leases/renew"))
        .and(body_partial_json(json!({ "lease_id": lease_id(n) })))
}

fn revoke_url(n: u32) -> MockBuilder {
    Mock::given(method("PUT")).and(path(format!("/v1/sys/leases/revoke/{}", lease_id(n))))
}

fn revoke_body(n: u32) -> MockBuilder {
    Mock::given(method("PUT"))
        .and(path("/v1/sys/leases/revoke"))
        .and(body_partial_json(json!({ "lease_id": lease_id(n) })))
}

/// The requests the stub received to `path`.
async fn calls(server: &MockServer, to: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == to)
        .collect()
}

/// Waits (briefly) until `path` has been called `n` times: revocations of a
/// replaced user run on a task of their own.
async fn wait_for_calls(server: &MockServer, to: &str, n: usize) {
    for _ in 0..100 {
        if calls(server, to).await.len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{to} was not called {n} times");
}

/// A source with a fixed token and one database user, started, and the
/// publisher the pool would read.
async fn started(server: &MockServer, lease_ttl: u64) -> (VaultSource, Publisher) {
    token_lookup(server, 3600).await;
    issue_user(server, 1, lease_ttl).await;
    let auth = VaultAuth::Token(SecretString::from(secret()));
    start(server, auth, dynamic()).await
}

async fn start(
    server: &MockServer,
    auth: VaultAuth,
    secret: VaultSecret,
) -> (VaultSource, Publisher) {
    let (source, first) = VaultSource::start(config(server, auth, secret), target(""))
        .await
        .expect("the source starts");
    let publisher = Publisher::new(
        first.target,
        first.valid_until,
        "vault",
        Arc::new(StubLogin::default()),
    );
    (source, publisher)
}

/// Makes the database secret due now and refreshes.
async fn secret_due(source: &mut VaultSource, publisher: &Publisher) {
    source.secret_next = Instant::now();
    source.step(publisher).await;
}

fn due_in(at: Instant) -> Duration {
    at.saturating_duration_since(Instant::now())
}

fn user(publisher: &Publisher) -> (u64, String) {
    let current = publisher.subscribe().borrow().clone();
    (current.generation, current.target.user.clone())
}

#[tokio::test]
async fn the_lease_is_renewed_at_two_thirds_of_its_ttl_in_the_url_form() {
    let server = MockServer::start().await;
    let (mut source, publisher) = started(&server, 30).await;
    assert_eq!(user(&publisher), (0, "v-user-1".to_owned()));
    let next = due_in(source.secret_next);
    assert!(
        next > Duration::from_secs(19) && next <= Duration::from_secs(20),
        "{next:?}"
    );
    let token_next = due_in(source.token_next.unwrap());
    assert!(token_next > Duration::from_secs(2399), "{token_next:?}");

    renew_url(1)
        .respond_with(renewed(30))
        .expect(1)
        .mount(&server)
        .await;
    secret_due(&mut source, &publisher).await;

    let renewals = calls(&server, &format!("/v1/sys/leases/renew/{}", lease_id(1))).await;
    let body: Value = renewals[0].body_json().unwrap();
    assert_eq!(body, json!({ "increment": 30 }));
    assert_eq!(user(&publisher), (0, "v-user-1".to_owned()), "same user");
    assert_eq!(calls(&server, &format!("/v1/{ROLE}")).await.len(), 1);
    let next = due_in(source.secret_next);
    assert!(
        next > Duration::from_secs(19) && next <= Duration::from_secs(20),
        "{next:?}"
    );
    assert_eq!(publisher.status().problem(), None);
}

#[tokio::test]
async fn a_policy_that_grants_only_the_body_form_renews_and_revokes_in_it_and_remembers() {
    let server = MockServer::start().await;
    let (mut source, publisher) = started(&server, 30).await;
    renew_url(1).respond_with(refused()).mount(&server).await;
    renew_body(1).respond_with(renewed(30)).mount(&server).await;
    revoke_url(1).respond_with(refused()).mount(&server).await;
    revoke_body(1)
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;

    secret_due(&mut source, &publisher).await;
    secret_due(&mut source, &publisher).await;
    source.release().await;

    let url_form = calls(&server, &format!("/v1/sys/leases/renew/{}", lease_id(1))).await;
    let body_form = calls(&server, "/v1/sys/leases/renew").await;
    assert_eq!(url_form.len(), 1, "the URL form is tried once");
    assert_eq!(body_form.len(), 2, "then the body form is used");
    assert_eq!(
        body_form[0].body_json::<Value>().unwrap(),
        json!({ "lease_id": lease_id(1), "increment": 30 })
    );
    assert_eq!(user(&publisher), (0, "v-user-1".to_owned()), "no new user");
    assert_eq!(calls(&server, &format!("/v1/{ROLE}")).await.len(), 1);
    assert_eq!(publisher.status().problem(), None);
}

#[tokio::test]
async fn a_lease_capped_by_its_max_ttl_is_replaced_by_a_new_user_and_the_old_one_revoked() {
    let server = MockServer::start().await;
    let (mut source, publisher) = started(&server, 30).await;
    // Vault grants less than asked: the max TTL is near.
    renew_url(1).respond_with(renewed(6)).mount(&server).await;
    issue_user(&server, 2, 30).await;
    revoke_url(1)
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;

    secret_due(&mut source, &publisher).await;

    assert_eq!(user(&publisher), (1, "v-user-2".to_owned()));
    assert_eq!(source.lease.as_ref().unwrap().id, lease_id(2));
    // Nobody holds the old user's connections here, so it goes at once.
    wait_for_calls(
        &server,
        &format!("/v1/sys/leases/revoke/{}", lease_id(1)),
        1,
    )
    .await;
    assert_eq!(publisher.status().problem(), None);
}

#[tokio::test]
async fn a_renewal_refused_in_both_forms_issues_a_new_user() {
    let server = MockServer::start().await;
    let (mut source, publisher) = started(&server, 30).await;
    renew_url(1).respond_with(refused()).mount(&server).await;
    renew_body(1).respond_with(refused()).mount(&server).await;
    issue_user(&server, 2, 30).await;
    revoke_url(1).respond_with(refused()).mount(&server).await;
    revoke_body(1).respond_with(refused()).mount(&server).await;

    secret_due(&mut source, &publisher).await;

    assert_eq!(user(&publisher), (1, "v-user-2".to_owned()));
    // The refused revocation is tried in both forms, then left to expire.
    wait_for_calls(&server, "/v1/sys/leases/revoke", 1).await;
    assert_eq!(
        calls(&server, &format!("/v1/sys/leases/revoke/{}", lease_id(1)))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_sealed_vault_keeps_the_current_user_backs_off_and_recovers() {
    let server = MockServer::start().await;
    let (mut source, publisher) = started(&server, 30).await;
    renew_url(1)
        .respond_with(sealed())
        .up_to_n_times(2)
        .mount(&server)
        .await;

    secret_due(&mut source, &publisher).await;
    let problem = publisher.status().problem().unwrap();
    assert!(problem.contains("Vault is not available"), "{problem}");
    assert!(problem.contains("Vault is sealed"), "{problem}");
    assert!(problem.contains("stay valid until"), "{problem}");
    assert!(due_in(source.secret_next) <= Duration::from_secs(1));
    secret_due(&mut source, &publisher).await;
    let next = due_in(source.secret_next);
    assert!(
        next > Duration::from_secs(1) && next <= Duration::from_secs(2),
        "{next:?}"
    );
    assert_eq!(
        user(&publisher),
        (0, "v-user-1".to_owned()),
        "the user stays"
    );
    assert_eq!(
        calls(&server, "/v1/sys/leases/renew").await.len(),
        0,
        "503 is no refusal"
    );

    // Unsealed: the next renewal works and readiness is clear again.
    renew_url(1).respond_with(renewed(30)).mount(&server).await;
    secret_due(&mut source, &publisher).await;
    assert_eq!(publisher.status().problem(), None);
    assert_eq!(source.failures, 0);
}

#[tokio::test]
async fn an_unreachable_vault_keeps_the_current_user_and_says_so() {
    let server = MockServer::start().await;
    let (mut source, publisher) = started(&server, 30).await;
    // From now on the address answers nothing: connection refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let mut elsewhere = config(
        &server,
        VaultAuth::Token(SecretString::from(secret())),
        dynamic(),
    );
    elsewhere.addr = format!("http://{addr}").parse().unwrap();
    source.client = VaultClient::new(&elsewhere).unwrap();

    secret_due(&mut source, &publisher).await;

    let problem = publisher.status().problem().unwrap();
    assert!(problem.contains("cannot reach Vault"), "{problem}");
    assert_eq!(user(&publisher), (0, "v-user-1".to_owned()));
    assert!(due_in(source.secret_next) <= Duration::from_secs(1));
}

#[tokio::test]
async fn a_token_that_can_no_longer_be_renewed_logs_in_again_and_moves_to_a_new_user() {
    let server = MockServer::start().await;
    let jwt = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(jwt.path(), secret()).unwrap();
    let (first_token, second_token) = (secret(), secret());
    for token in [&first_token, &second_token] {
        Mock::given(method("POST"))
            .and(path("/v1/auth/kubernetes/login"))
            .and(body_partial_json(json!({ "role": "student-api" })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "auth": { "client_token": token, "lease_duration": 60, "renewable": true }
            })))
            .up_to_n_times(1)
            .mount(&server)
            .await;
    }
    issue_user(&server, 1, 30).await;
    let auth = VaultAuth::Kubernetes {
        role: "student-api".to_owned(),
        mount: "kubernetes".to_owned(),
        jwt_file: jwt.path().to_owned(),
    };
    let (mut source, publisher) = start(&server, auth, dynamic()).await;
    let next = due_in(source.token_next.unwrap());
    assert!(
        next > Duration::from_secs(39) && next <= Duration::from_secs(40),
        "{next:?}"
    );

    // The token's max TTL is near: renewal grants less than its lifetime.
    Mock::given(method("POST"))
        .and(path("/v1/auth/token/renew-self"))
        .and(header("X-Vault-Token", first_token.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "auth": { "client_token": first_token, "lease_duration": 12, "renewable": true }
        })))
        .expect(1)
        .mount(&server)
        .await;
    issue_user(&server, 2, 30).await;
    revoke_url(1)
        .respond_with(ResponseTemplate::new(204))
        .mount(&server)
        .await;
    source.token_next = Some(Instant::now());
    source.step(&publisher).await;

    assert_eq!(calls(&server, "/v1/auth/kubernetes/login").await.len(), 2);
    // The old token's leases die with it: the new user is the new token's.
    let issued = calls(&server, &format!("/v1/{ROLE}")).await;
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[1].headers["x-vault-token"], second_token.as_str());
    assert_eq!(user(&publisher), (1, "v-user-2".to_owned()));
    assert_eq!(publisher.status().problem(), None);
}

#[tokio::test]
async fn a_refused_login_stops_the_service_at_start() {
    let server = MockServer::start().await;
    let jwt = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(jwt.path(), secret()).unwrap();
    Mock::given(method("POST"))
        .and(path("/v1/auth/kubernetes/login"))
        .respond_with(refused())
        .mount(&server)
        .await;
    let auth = VaultAuth::Kubernetes {
        role: "student-api".to_owned(),
        mount: "kubernetes".to_owned(),
        jwt_file: jwt.path().to_owned(),
    };
    let err = VaultSource::start(config(&server, auth, dynamic()), target(""))
        .await
        .unwrap_err();
    assert!(err.is_refusal(), "{err}");
    assert!(err.to_string().contains("HTTP 403"), "{err}");
}

#[tokio::test]
async fn a_changed_kv_secret_is_published_and_an_unchanged_one_is_not() {
    let server = MockServer::start().await;
    token_lookup(&server, 0).await;
    let kv = |version: u64, password: &str| {
        ResponseTemplate::new(200).set_body_json(json!({
            "data": {
                "data": { "username": "app", "password": password },
                "metadata": { "version": version }
            }
        }))
    };
    let (one, two) = (secret(), secret());
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/student-api/db"))
        .respond_with(kv(1, &one))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/secret/data/student-api/db"))
        .respond_with(kv(2, &two))
        .mount(&server)
        .await;
    let kv_secret = VaultSecret::Kv {
        mount: "secret".to_owned(),
        path: "student-api/db".to_owned(),
        refresh: Duration::from_mins(1),
    };
    let auth = VaultAuth::Token(SecretString::from(secret()));
    let (mut source, publisher) = start(&server, auth, kv_secret).await;
    assert_eq!(
        source.token_next, None,
        "a token without TTL is not renewed"
    );

    secret_due(&mut source, &publisher).await;
    assert_eq!(user(&publisher).0, 0, "unchanged");
    secret_due(&mut source, &publisher).await;
    assert_eq!(user(&publisher).0, 1, "changed");
    let current = publisher.current();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(current.password.as_ref().unwrap()),
        two
    );
    let next = due_in(source.secret_next);
    assert!(next > Duration::from_secs(59), "{next:?}");
}

#[tokio::test]
async fn shutdown_revokes_the_current_user() {
    let server = MockServer::start().await;
    let (source, publisher) = started(&server, 30).await;
    revoke_url(1)
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(source.run(publisher, stopped));
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
}

#[test]
fn backoff_doubles_from_one_second_up_to_thirty() {
    let delays: Vec<u64> = (1..=8).map(|n| backoff_delay(n).as_secs()).collect();
    assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(backoff_delay(u32::MAX), MAX_BACKOFF);
}
