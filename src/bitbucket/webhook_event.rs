//! The wire JSON of Bitbucket's repository and project webhook events: which repository or
//! project a delivery is about. Only the fields that name it are read; everything else in the
//! payload is ignored.

use serde::Deserialize;

use crate::domain::{ProjectKey, ProjectRef, RepoRef, RepoSlug, WorkspaceSlug};

/// What a delivery is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookSubject {
    /// One repository (created, updated, deleted, transferred).
    Repository(RepoRef),
    /// One project.
    Project(ProjectRef),
}

#[derive(Deserialize)]
struct Payload {
    repository: Option<WireRepository>,
    project: Option<WireProject>,
}

#[derive(Deserialize)]
struct WireRepository {
    full_name: Option<String>,
}

#[derive(Deserialize)]
struct WireProject {
    key: Option<String>,
    workspace: Option<WireWorkspace>,
}

#[derive(Deserialize)]
struct WireWorkspace {
    slug: Option<String>,
}

/// The repository or project a delivery's body names, or why none could be read.
pub fn webhook_subject(body: &[u8]) -> Result<WebhookSubject, String> {
    let payload: Payload = serde_json::from_slice(body)
        .map_err(|e| format!("the delivery is not the JSON of a Bitbucket event: {e}"))?;
    if let Some(full_name) = payload.repository.and_then(|r| r.full_name) {
        let (ws, slug) = full_name
            .split_once('/')
            .ok_or_else(|| format!("repository.full_name {full_name:?} is not WORKSPACE/REPO"))?;
        return Ok(WebhookSubject::Repository(RepoRef {
            workspace: WorkspaceSlug::parse(ws.to_owned()).map_err(|e| e.to_string())?,
            slug: RepoSlug::parse(slug.to_owned()).map_err(|e| e.to_string())?,
        }));
    }
    if let Some(project) = payload.project {
        let key = project.key.ok_or("project.key is missing")?;
        let ws = project
            .workspace
            .and_then(|w| w.slug)
            .ok_or("project.workspace.slug is missing")?;
        return Ok(WebhookSubject::Project(ProjectRef {
            workspace: WorkspaceSlug::parse(ws).map_err(|e| e.to_string())?,
            key: ProjectKey::parse(key).map_err(|e| e.to_string())?,
        }));
    }
    Err("the delivery names neither a repository nor a project".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_event_names_its_repository() {
        let body = br#"{"repository": {"full_name": "acme/payments-api", "name": "payments-api"}, "actor": {}}"#;
        match webhook_subject(body) {
            Ok(WebhookSubject::Repository(r)) => assert_eq!(r.to_string(), "acme/payments-api"),
            other => panic!("{other:?}"),
        }
        let body = br#"{"project": {"key": "PAY", "workspace": {"slug": "acme"}}}"#;
        assert!(matches!(
            webhook_subject(body),
            Ok(WebhookSubject::Project(_))
        ));
        assert!(webhook_subject(b"{}").is_err());
        assert!(webhook_subject(b"not json").is_err());
    }
}
