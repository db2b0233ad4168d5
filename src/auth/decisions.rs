//! What authorization reads from the database, remembered between requests and exact under
//! concurrent changes.
//!
//! A request with credentials needs its account (for a bearer token, to check the token's
//! credential mark) and a decision ([`super::Auth::live_actions`]: the repository, the
//! caller's namespace rights, its grants); a push asks whether its repository exists. All are
//! remembered here under the *access
//! generation* ([`AccountStore::access_generation`]) that the request read before reading any
//! row. Every change to accounts, teams, members, grants or a repository's existence or
//! visibility moves the generation in the transaction that makes it (database triggers), so:
//! - a request that starts after such a commit, on any replica or process, reads the new
//!   generation, finds nothing remembered under it, and reads the new rows;
//! - an answer is stored only under the generation read before its rows were, and only while
//!   that generation is still the newest seen: a slow reader never brings back an old answer.
//!
//! [`AccountStore::access_generation`]: crate::metadata::accounts::AccountStore::access_generation

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::metadata::accounts::{Account, RepoState};
use crate::metadata::proxy_cache::ProxyCacheRecord;
use crate::metadata::trust::TrustScope;

use super::scope::Actions;

/// Beyond this many entries of either kind the memory starts over, so it stays bounded
/// whatever names and repositories are asked for.
const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
struct Remembered {
    generation: u64,
    /// By account name; `None` remembers that no such account exists.
    accounts: HashMap<String, Option<Arc<Account>>>,
    /// By repository name: its facts; `None` remembers that it does not exist.
    repositories: HashMap<String, Option<RepoFacts>>,
    /// By repository, then account id (`None` for anonymous callers).
    actions: HashMap<String, HashMap<Option<i64>, Actions>>,
    actions_count: usize,
    /// By repository: the scope of the trust policy in force (`None`: no policy). Trust keys
    /// and policies move the access generation too (migration 0018).
    trust_policies: HashMap<String, Option<Arc<TrustScope>>>,
    /// By namespace: its proxy cache configuration (`None`: not a proxy cache). Creating or
    /// deleting one moves the access generation (migration 0021).
    proxies: HashMap<String, Option<Arc<ProxyCacheRecord>>>,
}

/// What authorization remembers of a repository: whether it is public, and its state (which
/// a push checks on every request, so it must cost no query). Both move the access generation
/// when they change (migrations 0013 and 0020).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepoFacts {
    pub public: bool,
    pub state: RepoState,
}

/// The remembered reads, valid for one access generation at a time.
#[derive(Default)]
pub struct Decisions {
    remembered: Mutex<Remembered>,
}

impl Decisions {
    /// The remembered reads if they belong to `generation`, after moving on to it when it is
    /// newer than what they belong to.
    fn at(&self, generation: u64) -> Option<MutexGuard<'_, Remembered>> {
        // A cache: after a panic elsewhere its maps are still consistent.
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if generation > remembered.generation {
            *remembered = Remembered {
                generation,
                ..Remembered::default()
            };
        }
        (remembered.generation == generation).then_some(remembered)
    }

    pub fn account(&self, generation: u64, name: &str) -> Option<Option<Arc<Account>>> {
        self.at(generation)?.accounts.get(name).cloned()
    }

    pub fn remember_account(&self, generation: u64, name: &str, account: Option<Arc<Account>>) {
        if let Some(mut remembered) = self.at(generation) {
            if remembered.accounts.len() >= MAX_ENTRIES {
                remembered.accounts.clear();
            }
            remembered.accounts.insert(name.to_string(), account);
        }
    }

    pub fn repository(&self, generation: u64, name: &str) -> Option<Option<RepoFacts>> {
        self.at(generation)?.repositories.get(name).copied()
    }

    pub fn remember_repository(&self, generation: u64, name: &str, facts: Option<RepoFacts>) {
        if let Some(mut remembered) = self.at(generation) {
            if remembered.repositories.len() >= MAX_ENTRIES {
                remembered.repositories.clear();
            }
            remembered.repositories.insert(name.to_string(), facts);
        }
    }

    pub fn actions(&self, generation: u64, who: Option<i64>, repo: &str) -> Option<Actions> {
        self.at(generation)?.actions.get(repo)?.get(&who).copied()
    }

    pub fn remember_actions(
        &self,
        generation: u64,
        who: Option<i64>,
        repo: &str,
        actions: Actions,
    ) {
        if let Some(mut remembered) = self.at(generation) {
            if remembered.actions_count >= MAX_ENTRIES {
                remembered.actions.clear();
                remembered.actions_count = 0;
            }
            let by_account = remembered.actions.entry(repo.to_string()).or_default();
            if by_account.insert(who, actions).is_none() {
                remembered.actions_count += 1;
            }
        }
    }

    /// The remembered trust policy in force on `repo` (see [`crate::trust::service`]).
    pub fn trust_policy(&self, generation: u64, repo: &str) -> Option<Option<Arc<TrustScope>>> {
        self.at(generation)?.trust_policies.get(repo).cloned()
    }

    pub fn remember_trust_policy(
        &self,
        generation: u64,
        repo: &str,
        scope: Option<Arc<TrustScope>>,
    ) {
        if let Some(mut remembered) = self.at(generation) {
            if remembered.trust_policies.len() >= MAX_ENTRIES {
                remembered.trust_policies.clear();
            }
            remembered.trust_policies.insert(repo.to_string(), scope);
        }
    }

    /// The remembered proxy cache configuration of `namespace` (see [`crate::proxy`]).
    pub fn proxy(&self, generation: u64, namespace: &str) -> Option<Option<Arc<ProxyCacheRecord>>> {
        self.at(generation)?.proxies.get(namespace).cloned()
    }

    pub fn remember_proxy(
        &self,
        generation: u64,
        namespace: &str,
        config: Option<Arc<ProxyCacheRecord>>,
    ) {
        if let Some(mut remembered) = self.at(generation) {
            if remembered.proxies.len() >= MAX_ENTRIES {
                remembered.proxies.clear();
            }
            remembered.proxies.insert(namespace.to_string(), config);
        }
    }

    /// Forgets everything: for changes the database does not see (the config's
    /// `SUPER_USERS`, `AUTHENTICATION_TYPE`).
    pub fn forget(&self) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        let generation = remembered.generation;
        *remembered = Remembered {
            generation,
            ..Remembered::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_for_the_generation_they_were_read_under() {
        let decisions = Decisions::default();
        decisions.remember_actions(3, Some(1), "org/app", Actions::ALL);
        assert_eq!(decisions.actions(3, Some(1), "org/app"), Some(Actions::ALL));
        // A newer generation empties the memory...
        assert_eq!(decisions.actions(4, Some(1), "org/app"), None);
        // ...and a reader still on the old one neither finds nor stores anything.
        decisions.remember_actions(3, Some(1), "org/app", Actions::ALL);
        assert_eq!(decisions.actions(3, Some(1), "org/app"), None);
        assert_eq!(decisions.actions(4, Some(1), "org/app"), None);
        decisions.remember_actions(4, None, "org/app", Actions::PULL);
        assert_eq!(decisions.actions(4, None, "org/app"), Some(Actions::PULL));
        assert_eq!(decisions.actions(4, Some(1), "org/app"), None);
        decisions.forget();
        assert_eq!(decisions.actions(4, None, "org/app"), None);
    }
}
