//! Unit tests of the ledger semantics.

use super::*;
use hts_proto::CASH_ASSET;

struct Fixture {
    _dir: tempfile::TempDir,
    url: String,
    store: AccountStore,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("acc.db").display());
    let store = AccountStore::open(&url).unwrap();
    store.seed_demo().await.unwrap();
    Fixture {
        _dir: dir,
        url,
        store,
    }
}

async fn balance(store: &AccountStore, account: &str, asset: &str) -> (i64, i64) {
    let balances = store.get_account(account).await.unwrap().unwrap();
    let b = balances.iter().find(|b| b.asset == asset).unwrap();
    (b.available, b.reserved)
}

#[tokio::test]
async fn unsupported_url_is_rejected() {
    assert!(matches!(
        AccountStore::open("postgres://localhost/x"),
        Err(StoreError::UnsupportedUrl(_))
    ));
    assert!(matches!(
        AccountStore::connect("mysql://localhost/x", 4).await,
        Err(StoreError::UnsupportedUrl(_))
    ));
}

#[tokio::test]
async fn reserve_moves_funds_and_is_idempotent() {
    let f = fixture().await;
    let s = &f.store;
    assert_eq!(
        s.reserve("r1", "ACC-0001", CASH_ASSET, 100).await.unwrap(),
        ReserveOutcome::Reserved
    );
    assert_eq!(
        balance(s, "ACC-0001", CASH_ASSET).await,
        (ledger::DEMO_CASH - 100, 100)
    );
    assert_eq!(
        s.reserve("r1", "ACC-0001", CASH_ASSET, 100).await.unwrap(),
        ReserveOutcome::AlreadyReserved
    );
    assert_eq!(
        balance(s, "ACC-0001", CASH_ASSET).await,
        (ledger::DEMO_CASH - 100, 100)
    );
}

#[tokio::test]
async fn reserve_conflicts_on_changed_parameters() {
    let f = fixture().await;
    let s = &f.store;
    s.reserve("r1", "ACC-0001", CASH_ASSET, 100).await.unwrap();
    for (acc, asset, amount) in [
        ("ACC-0002", CASH_ASSET, 100),
        ("ACC-0001", "005930", 100),
        ("ACC-0001", CASH_ASSET, 101),
    ] {
        assert_eq!(
            s.reserve("r1", acc, asset, amount).await.unwrap(),
            ReserveOutcome::ReservationConflict
        );
    }
}

#[tokio::test]
async fn reserve_rejects_invalid_unknown_and_insufficient() {
    let f = fixture().await;
    let s = &f.store;
    assert_eq!(
        s.reserve("r", "ACC-0001", CASH_ASSET, 0).await.unwrap(),
        ReserveOutcome::Invalid
    );
    assert_eq!(
        s.reserve("r", "ACC-0001", CASH_ASSET, -5).await.unwrap(),
        ReserveOutcome::Invalid
    );
    assert_eq!(
        s.reserve("", "ACC-0001", CASH_ASSET, 5).await.unwrap(),
        ReserveOutcome::Invalid
    );
    assert_eq!(
        s.reserve("r", "", CASH_ASSET, 5).await.unwrap(),
        ReserveOutcome::Invalid
    );
    assert_eq!(
        s.reserve("r", "NOPE", CASH_ASSET, 5).await.unwrap(),
        ReserveOutcome::UnknownAccount
    );
    assert_eq!(
        s.reserve("r", "ACC-0001", CASH_ASSET, ledger::DEMO_CASH + 1)
            .await
            .unwrap(),
        ReserveOutcome::Insufficient
    );
    assert_eq!(
        s.reserve("r", "ACC-0001", "NOSUCH", 1).await.unwrap(),
        ReserveOutcome::Insufficient
    );
    // Insufficient is not recorded: the id can still be used once funds suffice.
    assert_eq!(
        s.reserve("r", "ACC-0001", CASH_ASSET, 5).await.unwrap(),
        ReserveOutcome::Reserved
    );
}

#[tokio::test]
async fn release_semantics() {
    let f = fixture().await;
    let s = &f.store;
    assert_eq!(
        s.release("missing", "ACC-0001").await.unwrap(),
        ReleaseOutcome::NoReservation
    );
    s.reserve("r1", "ACC-0001", "005930", 10).await.unwrap();
    assert_eq!(
        s.release("r1", "ACC-0002").await.unwrap(),
        ReleaseOutcome::NoReservation
    );
    assert_eq!(
        balance(s, "ACC-0001", "005930").await,
        (ledger::DEMO_SHARES - 10, 10)
    );
    assert_eq!(
        s.release("r1", "ACC-0001").await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(
        balance(s, "ACC-0001", "005930").await,
        (ledger::DEMO_SHARES, 0)
    );
    assert_eq!(
        s.release("r1", "ACC-0001").await.unwrap(),
        ReleaseOutcome::WasReleased
    );
    // A released reservation is never held again.
    assert_eq!(
        s.reserve("r1", "ACC-0001", "005930", 10).await.unwrap(),
        ReserveOutcome::AlreadyReleased
    );
    assert_eq!(
        balance(s, "ACC-0001", "005930").await,
        (ledger::DEMO_SHARES, 0)
    );
}

#[tokio::test]
async fn seeding_is_idempotent_and_never_resets() {
    let f = fixture().await;
    let s = &f.store;
    s.reserve("r1", "ACC-1000", CASH_ASSET, 7).await.unwrap();
    s.seed_demo().await.unwrap();
    assert_eq!(
        balance(s, "ACC-1000", CASH_ASSET).await,
        (ledger::DEMO_CASH - 7, 7)
    );
    let balances = s.get_account("ACC-0500").await.unwrap().unwrap();
    assert_eq!(balances.len(), 4);
    assert!(s.get_account("ACC-1001").await.unwrap().is_none());
    // A second handle on the same file sees the same data and reseeds harmlessly.
    let other = AccountStore::open(&f.url).unwrap();
    other.seed_demo().await.unwrap();
    assert_eq!(
        balance(&other, "ACC-1000", CASH_ASSET).await,
        (ledger::DEMO_CASH - 7, 7)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invariant_holds_under_concurrent_random_calls() {
    use rand::{Rng, SeedableRng};
    let f = fixture().await;
    // Two handles = two writer threads contending for the same file.
    let handles = [f.store.clone(), AccountStore::open(&f.url).unwrap()];
    let accounts = ["ACC-0001", "ACC-0002", "ACC-0003"];
    let assets = [CASH_ASSET, "005930"];
    let mut tasks = Vec::new();
    for worker in 0..16u64 {
        let store = handles[(worker % 2) as usize].clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(worker);
            for _ in 0..40 {
                let id = format!("res-{}", rng.gen_range(0..30));
                let account = accounts[rng.gen_range(0..accounts.len())];
                if rng.gen_bool(0.6) {
                    let asset = assets[rng.gen_range(0..assets.len())];
                    let amount = rng.gen_range(1..=400_000);
                    store.reserve(&id, account, asset, amount).await.unwrap();
                } else {
                    store.release(&id, account).await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for account in accounts {
        let (a, r) = balance(&f.store, account, CASH_ASSET).await;
        assert_eq!(a + r, ledger::DEMO_CASH);
        let (a, r) = balance(&f.store, account, "005930").await;
        assert_eq!(a + r, ledger::DEMO_SHARES);
    }
    // Reserved totals match exactly the HELD reservations.
    let conn = hts_dbkit::sqlite::open_connection(&hts_dbkit::sqlite::sqlite_path(&f.url).unwrap())
        .unwrap();
    let mismatches: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM balances b WHERE b.reserved != COALESCE((
                SELECT SUM(amount) FROM reservations r
                WHERE r.account_id = b.account_id AND r.asset = b.asset AND r.status = 'HELD'), 0)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(mismatches, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_reserves_hold_once() {
    let f = fixture().await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let store = f.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .reserve("same", "ACC-0009", CASH_ASSET, 1000)
                .await
                .unwrap()
        }));
    }
    let mut reserved = 0;
    for task in tasks {
        if task.await.unwrap() == ReserveOutcome::Reserved {
            reserved += 1;
        }
    }
    assert_eq!(reserved, 1);
    assert_eq!(
        balance(&f.store, "ACC-0009", CASH_ASSET).await,
        (ledger::DEMO_CASH - 1000, 1000)
    );
}
