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

/// One generated ledger operation for the batch property.
#[derive(Debug, Clone)]
enum GenOp {
    Reserve {
        id: usize,
        account: usize,
        cash: bool,
        amount: i64,
        order: bool,
    },
    Release {
        id: usize,
        account: usize,
    },
}

fn gen_op() -> impl proptest::strategy::Strategy<Value = GenOp> {
    use proptest::prelude::*;
    prop_oneof![
        3 => (0..6usize, 0..3usize, any::<bool>(), prop_oneof![Just(0i64), 1..5i64, Just(400_000i64), Just(ledger::DEMO_CASH)], any::<bool>())
            .prop_map(|(id, account, cash, amount, order)| GenOp::Reserve { id, account, cash, amount, order }),
        1 => (0..6usize, 0..3usize).prop_map(|(id, account)| GenOp::Release { id, account }),
    ]
}

/// Account 2 of a case does not exist, so UNKNOWN_ACCOUNT is covered too.
fn gen_account(base: usize, account: usize) -> String {
    if account == 2 {
        format!("NOPE-{base}")
    } else {
        format!("ACC-{:04}", base + account)
    }
}

fn ledger_op(base: usize, op: &GenOp) -> LedgerOp {
    match op {
        GenOp::Reserve {
            id,
            account,
            cash,
            amount,
            order,
        } => LedgerOp::Reserve(ReserveArgs {
            reservation_id: format!("c{base}-r{id}"),
            account_id: gen_account(base, *account),
            asset: if *cash { CASH_ASSET } else { "005930" }.to_owned(),
            amount: *amount,
            request_id: order.then(|| format!("q{id}")),
        }),
        GenOp::Release { id, account } => LedgerOp::Release {
            reservation_id: format!("c{base}-r{id}"),
            account_id: gen_account(base, *account),
        },
    }
}

#[test]
fn a_batch_decides_like_one_operation_at_a_time() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (batched, single) = rt.block_on(async { (fixture().await, fixture().await) });
    let next = std::sync::atomic::AtomicUsize::new(1);
    let config = ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(history in proptest::collection::vec(gen_op(), 0..6),
                        batch in proptest::collection::vec(gen_op(), 1..20))| {
        let base = next.fetch_add(2, std::sync::atomic::Ordering::SeqCst);
        rt.block_on(async {
            for op in &history {
                let op = ledger_op(base, op);
                for s in [&batched.store, &single.store] {
                    s.apply(vec![op.clone()]).await;
                }
            }
            let ops: Vec<LedgerOp> = batch.iter().map(|op| ledger_op(base, op)).collect();
            let together: Vec<String> = batched.store.apply(ops.clone()).await
                .into_iter().map(|a| format!("{a:?}")).collect();
            let mut one_by_one = Vec::new();
            for op in ops {
                let mut a = single.store.apply(vec![op]).await;
                one_by_one.push(format!("{:?}", a.pop().unwrap()));
            }
            assert_eq!(together, one_by_one, "batch {batch:?} after {history:?}");
            for account in 0..2 {
                let name = gen_account(base, account);
                for asset in [CASH_ASSET, "005930"] {
                    assert_eq!(
                        balance(&batched.store, &name, asset).await,
                        balance(&single.store, &name, asset).await,
                        "{name}/{asset}"
                    );
                }
            }
        });
    });
}

#[tokio::test]
async fn an_order_reservation_refused_stays_refused() {
    let f = fixture().await;
    let s = &f.store;
    let big = |id: &str, amount| ReserveArgs {
        reservation_id: id.to_owned(),
        account_id: "ACC-0001".to_owned(),
        asset: CASH_ASSET.to_owned(),
        amount,
        request_id: Some("o1".to_owned()),
    };
    let answer = |mut v: Vec<Result<ReserveOutcome, StoreError>>| v.pop().unwrap().unwrap();
    assert_eq!(
        answer(s.reserve_batch(vec![big("o", ledger::DEMO_CASH + 1)]).await),
        ReserveOutcome::Insufficient
    );
    // Funds now suffice, but the decision for the order is final.
    s.reserve("free", "ACC-0001", CASH_ASSET, 1).await.unwrap();
    s.release("free", "ACC-0001").await.unwrap();
    assert_eq!(
        answer(s.reserve_batch(vec![big("o", ledger::DEMO_CASH + 1)]).await),
        ReserveOutcome::Insufficient
    );
    assert_eq!(
        answer(s.reserve_batch(vec![big("o", 5)]).await),
        ReserveOutcome::ReservationConflict
    );
    assert_eq!(
        s.release("o", "ACC-0001").await.unwrap(),
        ReleaseOutcome::NoReservation
    );
    assert_eq!(
        balance(s, "ACC-0001", CASH_ASSET).await,
        (ledger::DEMO_CASH, 0)
    );
}

#[tokio::test]
async fn held_order_reservations_are_listed_by_age_in_pages() {
    let f = fixture().await;
    let s = &f.store;
    let item = |id: &str, request_id: Option<&str>| ReserveArgs {
        reservation_id: id.to_owned(),
        account_id: "ACC-0001".to_owned(),
        asset: CASH_ASSET.to_owned(),
        amount: 10,
        request_id: request_id.map(str::to_owned),
    };
    let answers = s
        .reserve_batch(vec![
            item("place:ACC-0001:a", Some("a")),
            item("place:ACC-0001:b", Some("b")),
            item("place:ACC-0001:c", Some("c")),
            item("plain", None),
        ])
        .await;
    assert!(answers.iter().all(|a| a.is_ok()));
    s.release("place:ACC-0001:b", "ACC-0001").await.unwrap();
    // Too young for a one-hour age: nothing.
    assert!(s
        .held_reservations(3_600_000, "", 10)
        .await
        .unwrap()
        .is_empty());
    // Released and plain (not an order's) reservations are never listed.
    let all = s.held_reservations(0, "", 10).await.unwrap();
    let ids: Vec<&str> = all.iter().map(|r| r.reservation_id.as_str()).collect();
    assert_eq!(ids, ["place:ACC-0001:a", "place:ACC-0001:c"]);
    assert_eq!(all[0].request_id, "a");
    assert_eq!(
        (all[0].account_id.as_str(), all[0].amount),
        ("ACC-0001", 10)
    );
    let page = s.held_reservations(0, "", 1).await.unwrap();
    assert_eq!(page.len(), 1);
    let next = s
        .held_reservations(0, &page[0].reservation_id, 1)
        .await
        .unwrap();
    assert_eq!(next[0].reservation_id, "place:ACC-0001:c");
    // Reopening applies the migration once.
    drop(AccountStore::open(&f.url).unwrap());
}
