//! What a delivery sends: the event's JSON (Quay's `repo_push` fields) for `webhook`, and a
//! Slack incoming-webhook message (`text` plus one attachment) for `slack`.

use oci::RepoName;
use serde_json::{json, Value};

/// What happened, with the URLs that name the repository.
#[derive(Debug, Clone)]
pub struct EventContext {
    pub event: String,
    pub repository: RepoName,
    /// `host/namespace/name`, what `docker pull` takes.
    pub docker_url: String,
    /// The repository's dashboard page.
    pub homepage: String,
    pub tags: Vec<String>,
    /// A test delivery (`POST .../notification/{uuid}/test`).
    pub test: bool,
}

impl EventContext {
    fn namespace_and_name(&self) -> (&str, &str) {
        let full = self.repository.as_str();
        full.split_once('/').unwrap_or((full, ""))
    }

    /// The webhook body: Quay's fields for the event.
    pub fn webhook_body(&self) -> Value {
        let (namespace, name) = self.namespace_and_name();
        let mut body = json!({
            "repository": self.repository.as_str(),
            "namespace": namespace,
            "name": name,
            "docker_url": self.docker_url,
            "homepage": self.homepage,
        });
        let tags_key = match self.event.as_str() {
            "tag_deleted" => "deleted_tags",
            _ => "updated_tags",
        };
        body[tags_key] = json!(self.tags);
        if self.test {
            body["test"] = json!(true);
        }
        body
    }

    /// One line saying what happened.
    pub fn summary(&self) -> String {
        let tags = self.tags.join(", ");
        let what = match self.event.as_str() {
            "tag_deleted" => format!("Tags deleted from repository {}: {tags}", self.repository),
            _ => format!("Repository {} updated with tags: {tags}", self.repository),
        };
        if self.test {
            format!("Test notification. {what}")
        } else {
            what
        }
    }

    /// The Slack message: `text` with a link to the repository, and an attachment with the
    /// details, escaped as Slack's message format asks (`&`, `<`, `>`).
    pub fn slack_body(&self, title: &str) -> Value {
        let summary = slack_escape(&self.summary());
        let link = format!(
            "<{}|{}>",
            slack_escape(&self.homepage),
            slack_escape(self.repository.as_str())
        );
        let color = match self.event.as_str() {
            "tag_deleted" => "warning",
            _ => "good",
        };
        let title = if title.is_empty() {
            self.repository.as_str()
        } else {
            title
        };
        json!({
            "username": "berth",
            "text": format!("{summary} ({link})"),
            "attachments": [{
                "fallback": summary,
                "color": color,
                "title": slack_escape(title),
                "title_link": self.homepage,
                "text": format!("`docker pull {}:{}`", slack_escape(&self.docker_url),
                    slack_escape(self.tags.first().map_or("latest", String::as_str))),
                "mrkdwn_in": ["text"],
            }],
        })
    }
}

fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(event: &str) -> EventContext {
        EventContext {
            event: event.into(),
            repository: "acme/app".parse().unwrap(),
            docker_url: "registry.example/acme/app".into(),
            homepage: "https://registry.example/repository/acme/app".into(),
            tags: vec!["1.0".into(), "latest".into()],
            test: false,
        }
    }

    #[test]
    fn repo_push_has_quays_fields() {
        let body = context("repo_push").webhook_body();
        assert_eq!(body["repository"], "acme/app");
        assert_eq!(body["namespace"], "acme");
        assert_eq!(body["name"], "app");
        assert_eq!(body["docker_url"], "registry.example/acme/app");
        assert_eq!(body["updated_tags"], json!(["1.0", "latest"]));
        assert!(body.get("test").is_none());
        let body = context("tag_deleted").webhook_body();
        assert_eq!(body["deleted_tags"], json!(["1.0", "latest"]));
    }

    #[test]
    fn slack_messages_escape_and_link() {
        let mut c = context("repo_push");
        c.tags = vec!["<b>&".into()];
        let body = c.slack_body("");
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("&lt;b&gt;&amp;"), "{text}");
        assert!(text.contains("<https://registry.example/repository/acme/app|acme/app>"));
        assert_eq!(body["attachments"][0]["title"], "acme/app");
    }
}
