//! Permission levels and workspace roles, spelled as Bitbucket spells them.
//!
//! Levels are ordered from weakest to strongest so that "the highest of" in the effective-access
//! rules is a plain `max`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A string that is not one of the values Bitbucket uses for a level or role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {kind} (expected one of: {})", .expected.trim_end())]
pub struct LevelError {
    /// Which enumeration was being parsed.
    pub kind: &'static str,
    /// The refused value.
    pub value: String,
    /// The accepted values, space separated.
    pub expected: &'static str,
}

macro_rules! level_enum {
    (
        $(#[$doc:meta])* $name:ident, $kind:literal,
        { $( $(#[$vdoc:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $( $(#[$vdoc])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every value, weakest first.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Parses Bitbucket's spelling.
            pub fn parse(value: &str) -> Result<Self, LevelError> {
                match value {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(LevelError {
                        kind: $kind,
                        value: value.to_owned(),
                        expected: concat!($($text, " "),+),
                    }),
                }
            }

            /// Bitbucket's spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = LevelError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

level_enum!(
    /// An explicit or effective permission on a repository.
    RepoLevel, "repository permission level",
    {
        /// Clone and browse.
        Read => "read",
        /// Push.
        Write => "write",
        /// Change settings and permissions.
        Admin => "admin",
    }
);

level_enum!(
    /// An explicit permission on a project. It applies to every repository of the project.
    ProjectLevel, "project permission level",
    {
        /// Read on the project's repositories.
        Read => "read",
        /// Write on the project's repositories.
        Write => "write",
        /// Create repositories in the project; gives write on its repositories.
        CreateRepo => "create-repo",
        /// Admin on the project and its repositories.
        Admin => "admin",
    }
);

level_enum!(
    /// A member's role in a workspace (`/workspaces/{ws}/permissions`).
    WorkspaceRole, "workspace role",
    {
        /// The deprecated collaborator role (removed by Bitbucket in June 2022, still parsed).
        Collaborator => "collaborator",
        /// A plain member.
        Member => "member",
        /// A member who may create projects.
        CreateProject => "create-project",
        /// A workspace administrator: admin on every repository.
        Owner => "owner",
    }
);

impl RepoLevel {
    /// Parses a level where Bitbucket may also answer `none`, meaning "no explicit permission".
    pub fn parse_optional(value: &str) -> Result<Option<Self>, LevelError> {
        if value == "none" {
            Ok(None)
        } else {
            Self::parse(value).map(Some)
        }
    }
}

impl ProjectLevel {
    /// Parses a level where Bitbucket may also answer `none`, meaning "no explicit permission".
    pub fn parse_optional(value: &str) -> Result<Option<Self>, LevelError> {
        if value == "none" {
            Ok(None)
        } else {
            Self::parse(value).map(Some)
        }
    }

    /// The level this project permission gives on each repository of the project.
    ///
    /// `create-repo` lets its holder create repositories and write to the project's repositories;
    /// it does not give admin.
    pub fn repo_level(self) -> RepoLevel {
        match self {
            ProjectLevel::Read => RepoLevel::Read,
            ProjectLevel::Write | ProjectLevel::CreateRepo => RepoLevel::Write,
            ProjectLevel::Admin => RepoLevel::Admin,
        }
    }
}

impl From<RepoLevel> for ProjectLevel {
    fn from(level: RepoLevel) -> Self {
        match level {
            RepoLevel::Read => ProjectLevel::Read,
            RepoLevel::Write => ProjectLevel::Write,
            RepoLevel::Admin => ProjectLevel::Admin,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_roundtrip_bitbucket_spelling() {
        for level in ProjectLevel::ALL {
            assert_eq!(ProjectLevel::parse(level.as_str()), Ok(*level));
        }
        for level in RepoLevel::ALL {
            assert_eq!(RepoLevel::parse(level.as_str()), Ok(*level));
        }
        for role in WorkspaceRole::ALL {
            assert_eq!(WorkspaceRole::parse(role.as_str()), Ok(*role));
        }
        assert_eq!(ProjectLevel::CreateRepo.as_str(), "create-repo");
        assert_eq!(WorkspaceRole::CreateProject.as_str(), "create-project");
    }

    #[test]
    fn levels_are_ordered_and_none_is_absence() {
        assert!(RepoLevel::Read < RepoLevel::Write && RepoLevel::Write < RepoLevel::Admin);
        assert!(ProjectLevel::Write < ProjectLevel::CreateRepo);
        assert!(WorkspaceRole::Member < WorkspaceRole::Owner);
        assert_eq!(RepoLevel::parse_optional("none"), Ok(None));
        assert!(RepoLevel::parse("create-repo").is_err());
        let err = ProjectLevel::parse("owner").err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("create-repo")));
    }

    #[test]
    fn create_repo_gives_write_on_repositories() {
        assert_eq!(ProjectLevel::CreateRepo.repo_level(), RepoLevel::Write);
        assert_eq!(ProjectLevel::Admin.repo_level(), RepoLevel::Admin);
        assert_eq!(ProjectLevel::Read.repo_level(), RepoLevel::Read);
    }

    #[test]
    fn levels_serialize_as_bitbucket_strings() {
        let json = serde_json::to_string(&ProjectLevel::CreateRepo).ok();
        assert_eq!(json.as_deref(), Some("\"create-repo\""));
    }
}
