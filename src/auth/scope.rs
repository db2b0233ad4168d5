//! Docker token scopes (`repository:ns/repo:pull,push`) and the actions they name.

use oci::RepoName;
use serde::{Deserialize, Serialize};

/// A set of repository actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions {
    pub pull: bool,
    pub push: bool,
    pub delete: bool,
}

impl Actions {
    /// Every action.
    pub const ALL: Actions = Actions {
        pull: true,
        push: true,
        delete: true,
    };
    /// Nothing.
    pub const NONE: Actions = Actions {
        pull: false,
        push: false,
        delete: false,
    };
    /// Read only.
    pub const PULL: Actions = Actions {
        pull: true,
        push: false,
        delete: false,
    };

    /// Parses a comma-separated action list; unknown actions are ignored and `*` is all.
    pub fn parse(list: &str) -> Actions {
        let mut a = Actions::NONE;
        for action in list.split(',') {
            match action.trim() {
                "pull" => a.pull = true,
                "push" => a.push = true,
                "delete" => a.delete = true,
                "*" => a = Actions::ALL,
                _ => {}
            }
        }
        a
    }

    /// The actions in both sets.
    pub fn intersect(self, other: Actions) -> Actions {
        Actions {
            pull: self.pull && other.pull,
            push: self.push && other.push,
            delete: self.delete && other.delete,
        }
    }

    /// The actions in either set.
    pub fn union(self, other: Actions) -> Actions {
        Actions {
            pull: self.pull || other.pull,
            push: self.push || other.push,
            delete: self.delete || other.delete,
        }
    }

    /// Whether every action of `wanted` is here.
    pub fn covers(self, wanted: Actions) -> bool {
        self.intersect(wanted) == wanted
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self == Actions::NONE
    }

    /// The action names, in the order the token spec lists them.
    pub fn names(self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.pull {
            v.push("pull");
        }
        if self.push {
            v.push("push");
        }
        if self.delete {
            v.push("delete");
        }
        v
    }
}

/// One requested scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Repository {
        name: RepoName,
        actions: Actions,
    },
    /// `registry:catalog:*`
    Catalog,
}

impl Scope {
    /// Parses one scope; malformed or unknown scopes are `None` and simply not granted.
    pub fn parse(s: &str) -> Option<Scope> {
        if s.len() > 512 {
            return None;
        }
        let (kind, rest) = s.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        // Docker adds a resource class in parentheses, e.g. "repository(plugin)".
        let kind = kind.split('(').next().unwrap_or(kind);
        match kind {
            "repository" => Some(Scope::Repository {
                name: name.parse().ok()?,
                actions: Actions::parse(actions),
            }),
            "registry" if name == "catalog" => Some(Scope::Catalog),
            _ => None,
        }
    }

    /// Parses every scope of a request: repeated `scope` parameters, each possibly holding
    /// several space-separated scopes.
    pub fn parse_all<'a>(values: impl Iterator<Item = &'a str>) -> Vec<Scope> {
        values
            .flat_map(|v| v.split(' '))
            .filter(|s| !s.is_empty())
            .filter_map(Scope::parse)
            .collect()
    }
}

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl AccessEntry {
    /// The actions granted, as a set.
    pub fn action_set(&self) -> Actions {
        Actions::parse(&self.actions.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scopes() {
        let s = Scope::parse("repository:userorg/helm/quarkus:pull,push").unwrap();
        assert_eq!(
            s,
            Scope::Repository {
                name: "userorg/helm/quarkus".parse().unwrap(),
                actions: Actions {
                    pull: true,
                    push: true,
                    delete: false
                }
            }
        );
        assert_eq!(Scope::parse("registry:catalog:*"), Some(Scope::Catalog));
        assert!(matches!(
            Scope::parse("repository(plugin):a/b:pull"),
            Some(Scope::Repository { .. })
        ));
        assert_eq!(
            Scope::parse("repository:a/b:*").map(|s| match s {
                Scope::Repository { actions, .. } => actions,
                _ => Actions::NONE,
            }),
            Some(Actions::ALL)
        );
        for bad in [
            "",
            "repository",
            "repository:A/B:pull",
            "repository:../x:pull",
            "repository:a b:pull",
            "x:y:z",
            "registry:other:*",
        ] {
            assert_eq!(Scope::parse(bad), None, "{bad}");
        }
        let all = Scope::parse_all(
            [
                "repository:a/b:pull repository:c/d:push",
                "registry:catalog:*",
            ]
            .into_iter(),
        );
        assert_eq!(all.len(), 3);
    }

    #[test]
    fn action_sets() {
        let a = Actions::parse("pull,push,bogus");
        assert!(a.pull && a.push && !a.delete);
        assert!(Actions::ALL.covers(a));
        assert!(!a.covers(Actions::ALL));
        assert_eq!(a.intersect(Actions::PULL), Actions::PULL);
        assert_eq!(a.names(), vec!["pull", "push"]);
    }
}
