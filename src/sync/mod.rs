//! Sync: reads every managed workspace's access into the store within the request budget.

pub mod plan;
