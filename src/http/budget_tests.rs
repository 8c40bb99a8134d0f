//! Unit tests of the request budget, over windows of a fraction of a second.

use super::*;

fn settings(per_hour: u32, reserve: u32, in_flight: usize) -> BudgetSettings {
    BudgetSettings {
        requests_per_hour: per_hour,
        reserve,
        max_in_flight: in_flight,
    }
}

async fn admit_n(budget: &Budget, n: usize) {
    for _ in 0..n {
        drop(budget.admit("GET /user").await.expect("admitted"));
    }
}

#[tokio::test]
async fn the_free_allowance_is_spent_at_once_and_only_the_rest_waits() {
    let window = Duration::from_millis(500);
    let budget = Budget::with_window(BudgetSettings::default(), window);
    let start = Instant::now();
    admit_n(&budget, 900).await;
    assert_eq!(budget.stats().delayed, 0);
    assert_eq!(budget.available(), 0);
    // The 901st waits for the first to leave the window, and the wait is recorded.
    admit_n(&budget, 1).await;
    assert!(start.elapsed() >= window);
    let stats = budget.stats();
    assert_eq!((stats.admitted, stats.delayed), (901, 1));
    // Slept from just after the 900th admission until the first one left the window.
    assert!(stats.waited > window / 2, "{:?}", stats.waited);
    assert!(
        stats.waited < window + Duration::from_millis(100),
        "{:?}",
        stats.waited
    );
}

#[tokio::test]
async fn a_process_living_for_many_windows_keeps_only_the_last_one() {
    let budget = Budget::with_window(settings(100, 0, 4), Duration::from_millis(200));
    for _ in 0..10 {
        admit_n(&budget, 40).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Each batch lives one window: only the last is still in it.
    assert_eq!(budget.used_in_window(), 40);
    assert_eq!(budget.available(), 60);
    assert_eq!(budget.requests_used(), 400);
    assert_eq!(budget.stats().delayed, 0);
}

#[tokio::test]
async fn a_paced_budget_spaces_requests_after_the_burst() {
    // 72,000 per hour is one every 50 ms; a burst of 2 lets two through at once.
    let budget = Budget::with_burst(settings(72_000, 0, 8), 2);
    let start = Instant::now();
    admit_n(&budget, 5).await;
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(145), "took {elapsed:?}");
    assert_eq!(budget.request_counts()["GET /user"], 5);
    assert_eq!(budget.stats().delayed, 3);
}

#[tokio::test]
async fn never_exceeds_the_ceiling_of_the_window() {
    let window = Duration::from_millis(400);
    let budget = Budget::with_window(settings(10, 0, 8), window);
    let start = Instant::now();
    admit_n(&budget, 10).await;
    assert!(start.elapsed() < Duration::from_millis(100));
    assert_eq!(budget.available(), 0);
    admit_n(&budget, 1).await;
    assert!(start.elapsed() >= window);
}

#[tokio::test]
async fn reservations_reduce_what_is_available() {
    let budget = Budget::new(settings(100, 0, 8));
    assert_eq!(budget.available(), 100);
    assert!(budget.try_reserve(60));
    assert!(!budget.try_reserve(41));
    assert_eq!(budget.available(), 40);
    admit_n(&budget, 1).await;
    // The admitted request used one of the reserved ones.
    assert_eq!(budget.available(), 40);
    budget.release(59);
    assert_eq!(budget.available(), 99);
    assert_eq!(budget.remaining_now(), 99);
}

#[tokio::test]
async fn external_usage_reduces_the_window_and_expires_with_it() {
    let window = Duration::from_millis(300);
    let budget = Budget::with_window(settings(10, 0, 8), window);
    budget.set_external_usage(8);
    assert_eq!(budget.available(), 2);
    let start = Instant::now();
    admit_n(&budget, 2).await;
    assert_eq!(budget.stats().delayed, 0);
    let until = budget.time_until_available(1).expect("possible");
    assert!(until > window / 2 && until <= window, "{until:?}");
    // The third request waits for the window: the external eight and the own two fill it.
    admit_n(&budget, 1).await;
    assert!(start.elapsed() >= window);
    assert_eq!(budget.used_in_window(), 1);
    assert_eq!(budget.available(), 9);
}

#[tokio::test]
async fn time_until_available_follows_the_requests_leaving_the_window() {
    let window = Duration::from_secs(10);
    let budget = Budget::with_window(settings(5, 0, 8), window);
    admit_n(&budget, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    admit_n(&budget, 2).await;
    let until = |n| budget.time_until_available(n).expect("possible");
    assert_eq!(until(0), Duration::ZERO);
    // The first three leave together, the last two 300 ms later.
    assert!(until(1) > window - Duration::from_secs(1) && until(1) < window);
    let (one, three, four) = (until(1), until(3), until(4));
    assert!(
        three.abs_diff(one) < Duration::from_millis(50),
        "{one:?} {three:?}"
    );
    let gap = four - three;
    assert!(
        gap >= Duration::from_millis(300) && gap < Duration::from_millis(400),
        "{gap:?}"
    );
    assert_eq!(budget.time_until_available(6), None);
}

#[tokio::test]
async fn a_grant_uses_the_reserve_and_never_waits_behind_a_sync() {
    // Ten an hour, two kept for grants; one sync request in flight at a time.
    let budget = Arc::new(Budget::with_window(settings(10, 2, 1), HOUR));
    admit_n(&budget, 7).await;
    // The eighth sync request holds the only sync slot, a ninth waits for the window.
    let open = budget.admit("GET /user").await.expect("admitted");
    let waiting = {
        let budget = Arc::clone(&budget);
        tokio::spawn(async move { budget.admit("GET /user").await.map(drop) })
    };
    tokio::task::yield_now().await;
    let start = Instant::now();
    for _ in 0..2 {
        let grant = budget
            .admit_as("PUT /permissions", RequestClass::Grant)
            .await
            .expect("a grant may use the reserve");
        drop(grant);
    }
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "a grant waited"
    );
    assert_eq!(budget.stats().delayed, 0);
    // The reserve is spent too now: a third grant would wait like everything else.
    let third = tokio::time::timeout(
        Duration::from_millis(200),
        budget.admit_as("PUT /permissions", RequestClass::Grant),
    )
    .await;
    assert!(third.is_err(), "a grant went past the hourly allowance");
    drop(open);
    assert!(!waiting.is_finished());
    waiting.abort();
}

#[tokio::test]
async fn the_cap_refuses_requests_past_it() {
    let budget = Budget::new(settings(100_000, 0, 8));
    admit_n(&budget, 1).await;
    budget.cap_requests(Some(2));
    admit_n(&budget, 2).await;
    let refused = budget
        .admit("GET /user")
        .await
        .expect_err("the cap is spent");
    assert_eq!(refused.cap, 3);
    assert_eq!(budget.requests_used(), 3);
    budget.cap_requests(None);
    assert!(budget.admit("GET /user").await.is_ok());
}
