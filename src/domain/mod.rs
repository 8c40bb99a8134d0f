//! The domain: principals, resources, levels, effective-access rules, grants and drift.
//!
//! Architecture invariant: nothing here does IO or reads the clock. Time is passed in, so expiry
//! and drift are testable, and the store and the clients only translate to and from these types.

mod access;
mod attribution;
mod drift;
mod grant;
mod identity;
mod ids;
mod levels;
mod model;

pub use access::{
    effective_access, effective_access_for_account, effective_access_for_repository,
    EffectiveAccess, GroupMembers, Source, SourcedLevel, WorkspaceFacts,
};
pub use attribution::{pick as pick_attribution, Attribution};
pub use drift::{DriftEvent, EntityKind, FactKey};
pub use grant::{
    raise_to, standing_level, EndKind, Grant, GrantId, GrantLevel, GrantState, GrantTarget,
    NewGrant, SlotKey,
};
pub use identity::{
    match_identities, same_email, AccountType, Conflict, Identity, IdentityChange, IdentityRefresh,
    IdentitySource, JiraFact, MatchInput, MatchOutcome,
};
pub use ids::{
    AccountId, GroupSlug, IdError, Principal, ProjectKey, ProjectRef, RepoRef, RepoSlug,
    WorkspaceSlug,
};
pub use levels::{LevelError, ProjectLevel, RepoLevel, WorkspaceRole};
pub use model::{
    Account, AccountKind, Group, Project, ProjectPermission, Repository, RepositoryPermission,
    Workspace, WorkspaceMember,
};
