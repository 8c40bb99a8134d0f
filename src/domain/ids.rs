//! Identifier newtypes for principals and resources.
//!
//! Each identifier can only be built through `parse`, which refuses the characters the store uses
//! as separators in listing keys (`:` and `/`), whitespace and control characters. Bitbucket's own
//! slugs, keys and account ids never contain them, so a value that does is a bug upstream and is
//! better refused at the edge than stored.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The value was empty.
    #[error("{kind} must not be empty")]
    Empty {
        /// Which identifier was being parsed.
        kind: &'static str,
    },
    /// The value was longer than any identifier Bitbucket hands out.
    #[error("{kind} is longer than {max} characters")]
    TooLong {
        /// Which identifier was being parsed.
        kind: &'static str,
        /// The maximum length accepted.
        max: usize,
    },
    /// The value held a character that is not allowed.
    #[error("{kind} {value:?} contains the character {ch:?}, which no Bitbucket identifier holds")]
    BadChar {
        /// Which identifier was being parsed.
        kind: &'static str,
        /// The refused value.
        value: String,
        /// The first refused character.
        ch: char,
    },
}

const MAX_ID_LEN: usize = 255;

fn check(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.chars().count() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            max: MAX_ID_LEN,
        });
    }
    if let Some(ch) = value.chars().find(|c| {
        *c == '/' || (*c == ':' && kind != "account id") || c.is_whitespace() || c.is_control()
    }) {
        return Err(IdError::BadChar {
            kind,
            value: value.to_owned(),
            ch,
        });
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps an identifier.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($kind, &value)?;
                Ok(Self(value))
            }

            /// The identifier as Bitbucket spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

identifier!(
    /// An Atlassian account id (`557058:ba8948b2-…`), the primary key of a person across Atlassian.
    /// Unlike the other identifiers it may contain `:`.
    AccountId,
    "account id"
);
identifier!(
    /// A workspace slug (`acme`).
    WorkspaceSlug,
    "workspace slug"
);
identifier!(
    /// A project key (`PAY`), unique within a workspace.
    ProjectKey,
    "project key"
);
identifier!(
    /// A repository slug (`payments-api`), unique within a workspace.
    RepoSlug,
    "repository slug"
);
identifier!(
    /// A group slug (`developers`), unique within a workspace.
    GroupSlug,
    "group slug"
);

/// A repository named by its workspace and slug (`acme/payments-api`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RepoRef {
    /// The workspace holding the repository.
    pub workspace: WorkspaceSlug,
    /// The repository's slug.
    pub slug: RepoSlug,
}

impl fmt::Display for RepoRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.workspace, self.slug)
    }
}

/// A project named by its workspace and key (`acme/PAY`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProjectRef {
    /// The workspace holding the project.
    pub workspace: WorkspaceSlug,
    /// The project's key.
    pub key: ProjectKey,
}

impl fmt::Display for ProjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.workspace, self.key)
    }
}

/// Who holds a permission: one account, or every member of a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Principal {
    /// One Atlassian account.
    User {
        /// The account.
        account_id: AccountId,
    },
    /// A workspace group.
    Group {
        /// The group's slug.
        slug: GroupSlug,
    },
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User { account_id } => write!(f, "user {account_id}"),
            Principal::Group { slug } => write!(f, "group {slug}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_refuse_separators_and_blanks() {
        assert!(WorkspaceSlug::parse("acme").is_ok());
        assert!(WorkspaceSlug::parse("").is_err());
        assert!(RepoSlug::parse("a/b").is_err());
        assert!(GroupSlug::parse("dev ops").is_err());
        assert!(ProjectKey::parse("PAY:1").is_err());
        assert!(AccountId::parse("557058:ba8948b2-49da").is_ok());
        assert!(AccountId::parse("557058/x").is_err());
    }

    #[test]
    fn identifiers_deserialize_through_parse() {
        let ok: Result<RepoSlug, _> = serde_json::from_str("\"payments-api\"");
        assert_eq!(
            ok.map(|s| s.to_string()).ok().as_deref(),
            Some("payments-api")
        );
        let bad: Result<RepoSlug, _> = serde_json::from_str("\"a/b\"");
        assert!(bad.is_err());
    }
}
