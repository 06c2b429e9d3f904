//! The real account service over gRPC on 127.0.0.1:0.

use std::time::Duration;

use hts_account_service::{serve, AccountServiceConfig};
use hts_proto::v1::account_service_client::AccountServiceClient;
use hts_proto::v1::{
    GetAccountRequest, ReleaseOutcome, ReleaseRequest, ReserveOutcome, ReserveRequest,
};
use hts_proto::CASH_ASSET;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_reserve_release_get_account_and_health() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let config = AccountServiceConfig {
        store_url: format!("sqlite:{}", dir.path().join("a.db").display()),
        seed_demo: true,
        db_pool_size: 4,
        lanes: hts_account_service::store::DEFAULT_LANES,
        init: true,
    };
    let server = tokio::spawn(serve(listener, config, async move {
        let _ = stopped.await;
    }));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(Duration::from_secs(30))
        .connect_lazy();

    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "hts.v1.AccountService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let mut client = AccountServiceClient::new(channel);
    let reserve = |amount| ReserveRequest {
        reservation_id: "r1".into(),
        account_id: "ACC-0042".into(),
        asset: CASH_ASSET.into(),
        amount,
        request_id: String::new(),
    };
    let outcome = |r: hts_proto::v1::ReserveResponse| r.outcome();
    assert_eq!(
        outcome(client.reserve(reserve(500)).await.unwrap().into_inner()),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        outcome(client.reserve(reserve(500)).await.unwrap().into_inner()),
        ReserveOutcome::AlreadyReserved
    );
    assert_eq!(
        outcome(client.reserve(reserve(501)).await.unwrap().into_inner()),
        ReserveOutcome::ReservationConflict
    );
    let account = client
        .get_account(GetAccountRequest {
            account_id: "ACC-0042".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(account.found);
    let cash = account
        .balances
        .iter()
        .find(|b| b.asset == CASH_ASSET)
        .unwrap();
    assert_eq!((cash.available, cash.reserved), (1_000_000_000 - 500, 500));
    let release = ReleaseRequest {
        reservation_id: "r1".into(),
        account_id: "ACC-0042".into(),
    };
    assert_eq!(
        client
            .release(release.clone())
            .await
            .unwrap()
            .into_inner()
            .outcome(),
        ReleaseOutcome::Released
    );
    assert_eq!(
        client
            .release(release)
            .await
            .unwrap()
            .into_inner()
            .outcome(),
        ReleaseOutcome::WasReleased
    );
    let missing = client
        .get_account(GetAccountRequest {
            account_id: "NOPE".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!missing.found);

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn unsupported_store_url_fails_to_serve() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = AccountServiceConfig {
        store_url: "mysql://localhost/accounts".into(),
        seed_demo: false,
        db_pool_size: 4,
        lanes: hts_account_service::store::DEFAULT_LANES,
        init: true,
    };
    let err = serve(listener, config, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("unsupported store url"),
        "{err:#}"
    );
}
