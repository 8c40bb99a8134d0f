//! The default budget's figure: a 30-repository workspace synced with the default budget
//! (1,000 requests an hour, 100 in reserve) against the same run with an unlimited budget. The
//! whole run fits in what the rolling hour allows, so the budget must not slow it down.

use super::*;

/// The 30-repository workspace.
const THIRTY: Shape = Shape {
    workspaces: 1,
    projects: 3,
    repositories: 30,
    users: 40,
    groups_per_workspace: 5,
};

/// Latency of every simulated response, so the runs take network time as a real one does.
const THIRTY_LATENCY: Duration = Duration::from_millis(20);
/// Runs of each kind; the median counts.
const ROUNDS: usize = 3;
/// Target of issue 10: wall time with the default budget / the same run unlimited.
const MAX_DEFAULT_BUDGET_RATIO: f64 = 1.5;

fn median(mut walls: Vec<Duration>) -> Duration {
    walls.sort();
    walls[walls.len() / 2]
}

/// One first sync of the workspace into a fresh SQLite store, with a fresh `budget` (a new
/// process, as a user runs it); returns its wall time and how many admissions waited.
async fn first_sync(sim: &SimProcess, budget: Arc<Budget>) -> Result<(Figures, u64), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = store::open(&format!(
        "sqlite://{}",
        dir.path().join("budget.db").display()
    ))
    .await
    .map_err(|e| format!("cannot open the SQLite store: {e}"))?;
    let client = client_for(sim, Arc::clone(&budget))?;
    let f = measured_sync(store.as_ref(), &client).await?;
    if f.report.outcome != SyncOutcome::Complete {
        return Err(format!("the 30-repository sync was {:?}", f.report.outcome));
    }
    Ok((f, budget.stats().delayed))
}

/// Prints the ratio of the default budget's wall time to the unlimited one's, and checks it.
pub(super) async fn bench_default_budget(bin: &PathBuf, v: &mut Verdicts) -> Result<(), String> {
    let sim = start_sim(bin, &THIRTY, THIRTY_LATENCY).await?;
    let (mut unlimited, mut default) = (Vec::new(), Vec::new());
    let (mut requests, mut delayed) = (0, 0);
    for _ in 0..ROUNDS {
        // Unlimited, with the same requests in flight as the default budget.
        let unlimited_budget = BudgetSettings {
            requests_per_hour: 10_000_000,
            reserve: 0,
            ..BudgetSettings::default()
        };
        let budget = Arc::new(Budget::new(unlimited_budget));
        unlimited.push(first_sync(&sim, budget).await?.0.wall);
        let (f, waited) =
            first_sync(&sim, Arc::new(Budget::new(BudgetSettings::default()))).await?;
        default.push(f.wall);
        requests = f.report.requests_used;
        delayed += waited;
    }
    let (unlimited, default) = (median(unlimited), median(default));
    let ratio = default.as_secs_f64() / unlimited.as_secs_f64().max(1e-9);
    println!(
        "\nDefault budget: {} repositories, {} ms per response, 1,000 an hour with 100 in reserve, median of {ROUNDS}",
        THIRTY.repositories,
        THIRTY_LATENCY.as_millis()
    );
    println!(
        "    requests          {requests} per run, {delayed} admissions waited for the budget"
    );
    println!(
        "    wall time         {:.2} s default budget, {:.2} s unlimited",
        default.as_secs_f64(),
        unlimited.as_secs_f64()
    );
    println!(
        "    ratio             {ratio:.2}   target <= {MAX_DEFAULT_BUDGET_RATIO}   {}",
        v.check(
            "default budget: wall time / unlimited",
            ratio <= MAX_DEFAULT_BUDGET_RATIO && delayed == 0
        )
    );
    Ok(())
}
