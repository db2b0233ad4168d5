//! [`AccountStore`] on SQL: accounts, organizations, teams, permissions, tokens and sessions.

use async_trait::async_trait;
use oci::{Digest, RepoName};
use sqlx::any::{AnyExecutor, AnyRow};
use sqlx::Row;

use super::{changed_one, first, has_nul, ordering_bound, sql, LockMode, SqlStore};
use crate::metadata::accounts::{
    Account, AccountKind, AccountStore, ApiToken, Grantee, NamespaceRights, Permission, Reader,
    RepoState, RepositoryInfo, RepositoryQuery, RepositorySummary, Role, Session, Team, TeamRole,
};
use crate::metadata::{backend, now_millis, stored};
use crate::metadata::{MetadataError, Result};

/// A query reading the columns [`account`] expects from `accounts a` (eight), followed by
/// `$tail`.
macro_rules! select_accounts {
    ($tail:literal) => {
        concat!(
            "SELECT a.id, a.name, a.kind, a.password_hash, a.email, a.superuser, ",
            "(SELECT n.name FROM accounts n WHERE n.id = a.namespace_id), a.token_hash ",
            $tail
        )
    };
}

/// Whether repository `r` may be pulled by the reader bound as `$1` and `$2`
/// ([`Reader::bindings`]), by the pull rule of `Auth::live_actions` (which gives every member
/// of a proxy cache organization pull on its repositories), which
/// `tests/integration/visibility.rs` checks it agrees with. Queries with it go through [`sql!`].
macro_rules! readable_by_reader {
    () => {
        "($1 = 1 OR r.public = 1
          OR r.id IN (SELECT p.repository_id FROM repository_permissions p
                      WHERE p.account_id = $2
                         OR p.team_id IN (SELECT tm.team_id FROM team_members tm
                                          WHERE tm.account_id = $2))
          OR (CASE WHEN instr(r.name, '/') > 0 THEN substr(r.name, 1, instr(r.name, '/') - 1)
                   ELSE r.name END)
             IN (SELECT ns.name FROM accounts ns WHERE ns.kind = 'user' AND ns.id = $2
                 UNION ALL
                 SELECT o.name FROM accounts o
                   JOIN teams t ON t.org_id = o.id AND t.role = 'admin'
                   JOIN team_members tm ON tm.team_id = t.id
                 WHERE o.kind = 'organization' AND tm.account_id = $2
                 UNION ALL
                 SELECT o.name FROM accounts o
                   JOIN proxy_cache_configs pc ON pc.namespace_id = o.id
                   JOIN teams t ON t.org_id = o.id
                   JOIN team_members tm ON tm.team_id = t.id
                 WHERE tm.account_id = $2))"
    };
}

fn repository_row(r: &AnyRow) -> Result<RepositoryInfo> {
    Ok(RepositoryInfo {
        name: stored(r.get(0))?,
        public: r.get::<i64, _>(1) != 0,
        description: r.get(2),
        // An unknown stored state (a newer berth's) refuses changes rather than allowing them.
        state: RepoState::parse(r.get::<String, _>(3).as_str()).unwrap_or(RepoState::ReadOnly),
    })
}

fn account(row: &AnyRow) -> Result<Account> {
    Ok(Account {
        id: row.get(0),
        name: row.get(1),
        kind: stored(row.get(2))?,
        password_hash: row.get(3),
        email: row.get(4),
        superuser: row.get::<i64, _>(5) != 0,
        namespace: row.get(6),
        token_hash: row.get(7),
    })
}

fn team(row: &AnyRow) -> Result<Team> {
    Ok(Team {
        id: row.get(0),
        org: row.get(1),
        name: row.get(2),
        role: stored(row.get(3))?,
        description: row.get(4),
    })
}

/// Maps a uniqueness violation to `Conflict`.
pub(super) fn conflict(e: sqlx::Error) -> MetadataError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => MetadataError::Conflict,
        _ => backend(e),
    }
}

impl SqlStore {
    /// The accounts a [`select_accounts!`] query finds with `values` bound as `$1`, `$2`, ...
    async fn accounts(&self, sql: &'static str, values: &[&str]) -> Result<Vec<Account>> {
        let query = values.iter().fold(sqlx::query(sql), |q, v| q.bind(*v));
        self.read_all(query, account).await
    }

    async fn account_by(&self, sql: &'static str, value: &str) -> Result<Option<Account>> {
        Ok(self.accounts(sql, &[value]).await?.into_iter().next())
    }
}

/// The id of the account `name` (only of `kind`, when given); `NotFound` when there is none.
async fn required_id<'c>(
    db: impl AnyExecutor<'c>,
    name: &str,
    kind: Option<AccountKind>,
) -> Result<i64> {
    sqlx::query_scalar("SELECT id FROM accounts WHERE name = $1 AND ($2 IS NULL OR kind = $2)")
        .bind(name)
        .bind(kind.map(AccountKind::as_str))
        .fetch_optional(db)
        .await?
        .ok_or(MetadataError::NotFound)
}

#[async_trait]
impl AccountStore for SqlStore {
    async fn access_generation(&self) -> Result<u64> {
        if let Some(generations) = &self.generations {
            return generations.read();
        }
        let query = sqlx::query_scalar("SELECT value FROM access_generation");
        Ok(query.fetch_one(&self.reader).await.map(|v: i64| v as u64)?)
    }

    async fn account(&self, name: &str) -> Result<Option<Account>> {
        if has_nul(name) {
            return Ok(None);
        }
        self.account_by(select_accounts!("FROM accounts a WHERE a.name = $1"), name)
            .await
    }

    async fn list_accounts(&self, kind: AccountKind) -> Result<Vec<Account>> {
        let sql = select_accounts!("FROM accounts a WHERE a.kind = $1 ORDER BY a.name");
        self.accounts(sql, &[kind.as_str()]).await
    }

    async fn count_users(&self) -> Result<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE kind = 'user'")
            .fetch_one(&self.reader)
            .await?;
        Ok(count as u64)
    }

    async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        email: Option<&str>,
        superuser: bool,
    ) -> Result<Account> {
        sqlx::query(
            "INSERT INTO accounts (name, kind, password_hash, email, superuser, created_at)
             VALUES ($1, 'user', $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(password_hash)
        .bind(email)
        .bind(i64::from(superuser))
        .bind(now_millis())
        .execute(&self.writer)
        .await
        .map_err(conflict)?;
        self.account(name).await?.ok_or(MetadataError::NotFound)
    }

    async fn set_password(&self, name: &str, password_hash: &str) -> Result<()> {
        let query =
            sqlx::query("UPDATE accounts SET password_hash = $2 WHERE name = $1 AND kind = 'user'")
                .bind(name)
                .bind(password_hash);
        changed_one(self.write(query).await?, MetadataError::NotFound)
    }

    async fn create_organization(&self, name: &str, owner: &str) -> Result<Account> {
        let now = now_millis();
        let mut tx = self.begin().await?;
        let owner_id = required_id(&mut *tx, owner, Some(AccountKind::User)).await?;
        let org_id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (name, kind, created_at) VALUES ($1, 'organization', $2) RETURNING id",
        )
        .bind(name)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict)?;
        let team_id: i64 = sqlx::query_scalar(
            "INSERT INTO teams (org_id, name, role, description) VALUES ($1, 'owners', 'admin', 'organization owners')
             RETURNING id",
        )
        .bind(org_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO team_members (team_id, account_id) VALUES ($1, $2)")
            .bind(team_id)
            .bind(owner_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.account(name).await?.ok_or(MetadataError::NotFound)
    }

    async fn create_robot(
        &self,
        namespace: &str,
        short: &str,
        token_hash: &str,
    ) -> Result<Account> {
        let ns_id = required_id(&self.reader, namespace, None).await?;
        let name = format!("{namespace}+{short}");
        sqlx::query(
            "INSERT INTO accounts (name, kind, token_hash, namespace_id, created_at) VALUES ($1, 'robot', $2, $3, $4)",
        )
        .bind(&name)
        .bind(token_hash)
        .bind(ns_id)
        .bind(now_millis())
        .execute(&self.writer)
        .await
        .map_err(conflict)?;
        self.account(&name).await?.ok_or(MetadataError::NotFound)
    }

    async fn set_robot_token(&self, name: &str, token_hash: &str) -> Result<()> {
        let query =
            sqlx::query("UPDATE accounts SET token_hash = $2 WHERE name = $1 AND kind = 'robot'")
                .bind(name)
                .bind(token_hash);
        changed_one(self.write(query).await?, MetadataError::NotFound)
    }

    async fn list_robots(&self, namespace: &str) -> Result<Vec<Account>> {
        let sql = select_accounts!(
            "FROM accounts a JOIN accounts n ON n.id = a.namespace_id
             WHERE a.kind = 'robot' AND n.name = $1 ORDER BY a.name"
        );
        self.accounts(sql, &[namespace]).await
    }

    async fn delete_account(&self, name: &str) -> Result<bool> {
        let _invalidate = self.invalidate_on_exit(None);
        let mut tx = self.begin().await?;
        // A namespace's repositories go with it, so nobody who later takes the name inherits
        // them. Compared by prefix, not LIKE, since names may contain `_`.
        for sql in [
            "DELETE FROM tags WHERE repository_id IN
                (SELECT id FROM repositories WHERE substr(name, 1, length($1) + 1) = $1 || '/')",
            "DELETE FROM manifest_references WHERE repository_id IN
                (SELECT id FROM repositories WHERE substr(name, 1, length($1) + 1) = $1 || '/')",
            "DELETE FROM manifests WHERE repository_id IN
                (SELECT id FROM repositories WHERE substr(name, 1, length($1) + 1) = $1 || '/')",
            "DELETE FROM repositories WHERE substr(name, 1, length($1) + 1) = $1 || '/'",
        ] {
            sqlx::query(sql).bind(name).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM accounts WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn put_team(
        &self,
        org: &str,
        name: &str,
        role: TeamRole,
        description: &str,
    ) -> Result<Team> {
        let org_id = required_id(&self.reader, org, Some(AccountKind::Organization)).await?;
        let row = sqlx::query(
            "INSERT INTO teams (org_id, name, role, description) VALUES ($1, $2, $3, $4)
             ON CONFLICT(org_id, name) DO UPDATE SET role = excluded.role, description = excluded.description
             RETURNING id, $5, name, role, description",
        )
        .bind(org_id)
        .bind(name)
        .bind(role.as_str())
        .bind(description)
        .bind(org)
        .fetch_one(&self.writer)
        .await?;
        team(&row)
    }

    async fn list_teams(&self, org: &str) -> Result<Vec<Team>> {
        let query = sqlx::query(
            "SELECT t.id, o.name, t.name, t.role, t.description FROM teams t JOIN accounts o ON o.id = t.org_id
             WHERE o.name = $1 ORDER BY t.name",
        )
        .bind(org);
        self.read_all(query, team).await
    }

    async fn delete_team(&self, org: &str, name: &str) -> Result<bool> {
        let query = sqlx::query(
            "DELETE FROM teams WHERE name = $2 AND org_id = (SELECT id FROM accounts WHERE name = $1)",
        )
        .bind(org)
        .bind(name);
        Ok(self.write(query).await? > 0)
    }

    async fn add_team_member(&self, org: &str, team_name: &str, member: &str) -> Result<()> {
        let robot_namespace: Option<Option<String>> = sqlx::query_scalar(
            "SELECT (SELECT n.name FROM accounts n WHERE n.id = a.namespace_id) FROM accounts a
             WHERE a.name = $1 AND a.kind = 'robot'",
        )
        .bind(member)
        .fetch_optional(&self.reader)
        .await?;
        if robot_namespace.is_some_and(|ns| ns.as_deref() != Some(org)) {
            return Err(MetadataError::Refused(
                "a robot may only join teams of its own namespace",
            ));
        }
        let query = sqlx::query(
            "INSERT INTO team_members (team_id, account_id)
             SELECT t.id, m.id FROM teams t JOIN accounts o ON o.id = t.org_id, accounts m
             WHERE o.name = $1 AND t.name = $2 AND m.name = $3 AND m.kind IN ('user', 'robot')
               AND (m.kind = 'user' OR m.namespace_id = o.id)
             ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(team_name)
        .bind(member);
        if self.write(query).await? == 1 {
            return Ok(());
        }
        // Nothing inserted: already a member, or a name did not resolve.
        let query = sqlx::query(
            "SELECT 1 FROM team_members tm JOIN teams t ON t.id = tm.team_id JOIN accounts o ON o.id = t.org_id
             JOIN accounts m ON m.id = tm.account_id WHERE o.name = $1 AND t.name = $2 AND m.name = $3",
        )
        .bind(org)
        .bind(team_name)
        .bind(member);
        self.read_one(query, |_| Ok(()))
            .await?
            .ok_or(MetadataError::NotFound)
    }

    async fn remove_team_member(&self, org: &str, team_name: &str, member: &str) -> Result<bool> {
        let query = sqlx::query(
            "DELETE FROM team_members WHERE
               team_id = (SELECT t.id FROM teams t JOIN accounts o ON o.id = t.org_id WHERE o.name = $1 AND t.name = $2)
               AND account_id = (SELECT id FROM accounts WHERE name = $3)",
        )
        .bind(org)
        .bind(team_name)
        .bind(member);
        Ok(self.write(query).await? > 0)
    }

    async fn team_members(&self, org: &str, team_name: &str) -> Result<Vec<Account>> {
        let sql = select_accounts!(
            "FROM accounts a WHERE a.id IN (SELECT tm.account_id FROM team_members tm
                 JOIN teams t ON t.id = tm.team_id JOIN accounts o ON o.id = t.org_id
                 WHERE o.name = $1 AND t.name = $2)
             ORDER BY a.name"
        );
        self.accounts(sql, &[org, team_name]).await
    }

    async fn organization_members(&self, org: &str) -> Result<Vec<Account>> {
        let sql = select_accounts!(
            "FROM accounts a WHERE a.id IN (SELECT tm.account_id FROM team_members tm
                 JOIN teams t ON t.id = tm.team_id JOIN accounts o ON o.id = t.org_id
                 WHERE o.name = $1)
             ORDER BY a.name"
        );
        self.accounts(sql, &[org]).await
    }

    async fn namespace_rights(&self, account_id: i64, namespace: &str) -> Result<NamespaceRights> {
        let row: Option<(i64, String, Option<i64>)> = sqlx::query_as(
            "SELECT ns.id, ns.kind,
                (SELECT MAX(CASE t.role WHEN 'member' THEN 1 WHEN 'creator' THEN 2 WHEN 'admin' THEN 3 END)
                 FROM teams t JOIN team_members m ON m.team_id = t.id
                 WHERE t.org_id = ns.id AND m.account_id = $1)
             FROM accounts ns WHERE ns.name = $2",
        )
        .bind(account_id)
        .bind(namespace)
        .fetch_optional(&self.reader)
        .await?;
        let Some((ns_id, kind, rank)) = row else {
            return Ok(NamespaceRights::default());
        };
        let (admin, create, member) = match kind.as_str() {
            "user" => (ns_id == account_id, ns_id == account_id, false),
            "organization" => (rank == Some(3), rank >= Some(2), rank.is_some()),
            _ => (false, false, false),
        };
        Ok(NamespaceRights {
            admin,
            create,
            member,
        })
    }

    async fn granted_role(
        &self,
        account_id: i64,
        repo: &RepoName,
    ) -> Result<Option<Role>, MetadataError> {
        let query = sqlx::query(
            "SELECT p.role FROM repository_permissions p JOIN repositories r ON r.id = p.repository_id
             WHERE r.name = $2 AND (p.account_id = $1
                OR p.team_id IN (SELECT team_id FROM team_members WHERE account_id = $1))
             ORDER BY CASE p.role WHEN 'admin' THEN 3 WHEN 'write' THEN 2 ELSE 1 END DESC LIMIT 1",
        )
        .bind(account_id)
        .bind(repo.as_str());
        self.read_one(query, first).await
    }

    async fn repository_info(
        &self,
        repo: &RepoName,
    ) -> Result<Option<RepositoryInfo>, MetadataError> {
        let query = sqlx::query(
            "SELECT name, public, description, state FROM repositories WHERE name = $1",
        )
        .bind(repo.as_str());
        self.read_one(query, repository_row).await
    }

    async fn repository_summaries(
        &self,
        reader: Reader,
        namespace: Option<&str>,
        filter: Option<&str>,
    ) -> Result<Vec<RepositorySummary>, MetadataError> {
        if namespace.is_some_and(has_nul) || filter.is_some_and(has_nul) {
            return Ok(Vec::new());
        }
        let (everything, account) = reader.bindings();
        let query = sqlx::query(sql!(
            self,
            concat!(
                "SELECT r.name, r.public, r.description, count(t.name), max(t.updated_at)
             FROM repositories r LEFT JOIN tags t ON t.repository_id = r.id
             WHERE ($3 IS NULL OR substr(r.name, 1, length($3) + 1) = $3 || '/')
               AND ($4 IS NULL OR instr(r.name, $4) > 0)
               AND ",
                readable_by_reader!(),
                " GROUP BY r.id ORDER BY r.name"
            )
        ))
        .bind(everything)
        .bind(account)
        .bind(namespace)
        .bind(filter);
        self.read_all(query, |r| {
            Ok(RepositorySummary {
                name: stored(r.get(0))?,
                public: r.get::<i64, _>(1) != 0,
                description: r.get(2),
                tag_count: r.get::<i64, _>(3) as u64,
                last_modified: r.get(4),
            })
        })
        .await
    }

    async fn readable_repositories(
        &self,
        query: &RepositoryQuery<'_>,
    ) -> Result<Vec<RepositoryInfo>, MetadataError> {
        if query.namespace.is_some_and(has_nul) {
            return Ok(Vec::new());
        }
        let (everything, account) = query.reader.bindings();
        // A namespace's names are the namespace itself and those from `ns/` up to `ns0`
        // (`0` follows `/` in byte order).
        let select = sqlx::query(sql!(
            self,
            concat!(
                "SELECT r.name, r.public, r.description, r.state FROM repositories r
             WHERE r.name > $3
               AND ($4 IS NULL OR r.name = $4
                    OR (r.name > ($4 || '/') AND r.name < ($4 || '0')))
               AND ",
                readable_by_reader!(),
                " ORDER BY r.name LIMIT $5"
            )
        ))
        .bind(everything)
        .bind(account)
        .bind(ordering_bound(query.after.unwrap_or("")))
        .bind(query.namespace)
        .bind(i64::from(query.limit));
        self.read_all(select, repository_row).await
    }

    async fn readable_repositories_with_blob(
        &self,
        reader: Reader,
        digest: &Digest,
        limit: u32,
    ) -> Result<Vec<RepoName>, MetadataError> {
        let (everything, account) = reader.bindings();
        let query = sqlx::query(sql!(
            self,
            concat!(
            "SELECT r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
             WHERE rb.digest = $3 AND ",
            readable_by_reader!(),
            " ORDER BY r.name LIMIT $4"
        )
        ))
        .bind(everything)
        .bind(account)
        .bind(digest.to_string())
        .bind(i64::from(limit));
        self.read_all(query, first).await
    }

    async fn create_repository(
        &self,
        repo: &RepoName,
        public: bool,
        description: &str,
        creator: Option<(i64, Role)>,
    ) -> Result<(), MetadataError> {
        let mut tx = self.begin().await?;
        let repo_id: i64 = sqlx::query_scalar(
            "INSERT INTO repositories (name, created_at, public, description)
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(repo.as_str())
        .bind(now_millis())
        .bind(i64::from(public))
        .bind(description)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict)?;
        if let Some((account_id, role)) = creator {
            sqlx::query(
                "INSERT INTO repository_permissions (repository_id, account_id, role) VALUES ($1, $2, $3)",
            )
            .bind(repo_id)
            .bind(account_id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn set_description(
        &self,
        repo: &RepoName,
        description: &str,
    ) -> Result<bool, MetadataError> {
        let _invalidate = self.invalidate_on_exit(Some(repo.as_str()));
        let query = sqlx::query("UPDATE repositories SET description = $2 WHERE name = $1")
            .bind(repo.as_str())
            .bind(description);
        Ok(self.write(query).await? > 0)
    }

    async fn set_visibility(&self, repo: &RepoName, public: bool) -> Result<bool, MetadataError> {
        let _invalidate = self.invalidate_on_exit(Some(repo.as_str()));
        let query = sqlx::query("UPDATE repositories SET public = $2 WHERE name = $1")
            .bind(repo.as_str())
            .bind(i64::from(public));
        Ok(self.write(query).await? > 0)
    }

    async fn set_repository_state(
        &self,
        repo: &RepoName,
        state: RepoState,
    ) -> Result<bool, MetadataError> {
        let _invalidate = self.invalidate_on_exit(Some(repo.as_str()));
        let query = sqlx::query("UPDATE repositories SET state = $2 WHERE name = $1")
            .bind(repo.as_str())
            .bind(state.as_str());
        Ok(self.write(query).await? > 0)
    }

    async fn delete_repository(&self, repo: &RepoName) -> Result<bool, MetadataError> {
        let _invalidate = self.invalidate_on_exit(Some(repo.as_str()));
        let mut tx = self.begin().await?;
        // Tags and references first: their foreign keys point at manifests of this repository.
        for sql in [
            "DELETE FROM tags WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)",
            "DELETE FROM manifest_references WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)",
            "DELETE FROM manifests WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)",
        ] {
            sqlx::query(sql).bind(repo.as_str()).execute(&mut *tx).await?;
        }
        let done = sqlx::query("DELETE FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_repository_if_empty(&self, repo: &RepoName) -> Result<bool, MetadataError> {
        let _invalidate = self.invalidate_on_exit(Some(repo.as_str()));
        let query = sqlx::query(
            "DELETE FROM repositories WHERE name = $1
               AND NOT EXISTS (SELECT 1 FROM manifests WHERE repository_id = repositories.id)
               AND NOT EXISTS (SELECT 1 FROM repository_blobs WHERE repository_id = repositories.id)
               AND NOT EXISTS (SELECT 1 FROM uploads WHERE repository_id = repositories.id)",
        )
        .bind(repo.as_str());
        Ok(self.write(query).await? > 0)
    }

    async fn set_permission(&self, repo: &RepoName, grantee: &Grantee, role: Role) -> Result<()> {
        let mut tx = self.begin().await?;
        // The row lock serializes grants on one repository (SQLite's single writer does so by
        // itself), so two concurrent grants to one grantee replace each other instead of
        // colliding.
        let repo_id: i64 = sqlx::query_scalar(sql!(
            self,
            "SELECT id FROM repositories WHERE name = $1 FOR UPDATE"
        ))
        .bind(repo.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(MetadataError::NotFound)?;
        let (account_id, team_id): (Option<i64>, Option<i64>) = match grantee {
            Grantee::Account(name) => {
                let (id, kind, namespace): (i64, String, Option<String>) = sqlx::query_as(
                    "SELECT a.id, a.kind, (SELECT n.name FROM accounts n WHERE n.id = a.namespace_id)
                     FROM accounts a WHERE a.name = $1 AND a.kind IN ('user', 'robot')",
                )
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(MetadataError::NotFound)?;
                if kind == "robot" && namespace.as_deref() != Some(repo.namespace()) {
                    return Err(MetadataError::Refused(
                        "a robot may only be granted rights in its own namespace",
                    ));
                }
                (Some(id), None)
            }
            Grantee::Team(name) => {
                let id = sqlx::query_scalar(
                    "SELECT t.id FROM teams t JOIN accounts o ON o.id = t.org_id WHERE o.name = $1 AND t.name = $2",
                )
                .bind(repo.namespace())
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(MetadataError::NotFound)?;
                (None, Some(id))
            }
        };
        sqlx::query(
            "DELETE FROM repository_permissions WHERE repository_id = $1
             AND account_id IS NOT DISTINCT FROM $2 AND team_id IS NOT DISTINCT FROM $3",
        )
        .bind(repo_id)
        .bind(account_id)
        .bind(team_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO repository_permissions (repository_id, account_id, team_id, role) VALUES ($1, $2, $3, $4)")
            .bind(repo_id)
            .bind(account_id)
            .bind(team_id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await.map_err(backend)
    }

    async fn remove_permission(&self, repo: &RepoName, grantee: &Grantee) -> Result<bool> {
        let query = match grantee {
            Grantee::Account(name) => sqlx::query(
                "DELETE FROM repository_permissions
                 WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)
                   AND account_id = (SELECT id FROM accounts WHERE name = $2)",
            )
            .bind(repo.as_str())
            .bind(name),
            Grantee::Team(name) => sqlx::query(
                "DELETE FROM repository_permissions
                 WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)
                   AND team_id = (SELECT t.id FROM teams t JOIN accounts o ON o.id = t.org_id
                                  WHERE o.name = $3 AND t.name = $2)",
            )
            .bind(repo.as_str())
            .bind(name)
            .bind(repo.namespace()),
        };
        Ok(self.write(query).await? > 0)
    }

    async fn list_permissions(&self, repo: &RepoName) -> Result<Vec<Permission>> {
        let query = sqlx::query(
            "SELECT a.name, a.kind, t.name, p.role FROM repository_permissions p
             JOIN repositories r ON r.id = p.repository_id
             LEFT JOIN accounts a ON a.id = p.account_id
             LEFT JOIN teams t ON t.id = p.team_id
             WHERE r.name = $1 ORDER BY a.name NULLS FIRST, t.name NULLS FIRST",
        )
        .bind(repo.as_str());
        self.read_all(query, |r| {
            // A team grantee joins no account, so its kind is NULL.
            let grantee = match (r.get(0), r.get(2)) {
                (Some(name), _) => Grantee::Account(name),
                (None, Some(name)) => Grantee::Team(name),
                (None, None) => return Err(MetadataError::Backend("no grantee".into())),
            };
            Ok(Permission {
                grantee,
                kind: r.get::<Option<&str>, _>(1).and_then(AccountKind::parse),
                role: stored(r.get(3))?,
            })
        })
        .await
    }

    async fn create_api_token(&self, token: &ApiToken, token_hash: &str) -> Result<()> {
        let query = sqlx::query(
            "INSERT INTO api_tokens (uuid, name, account_id, created_at, expires_at, token_hash)
             SELECT $1, $2, id, $3, $4, $5 FROM accounts WHERE name = $6 AND kind = 'user'",
        )
        .bind(token.uuid.to_string())
        .bind(token.name.clone())
        .bind(token.created_at)
        .bind(token.expires_at)
        .bind(token_hash)
        .bind(token.account.clone());
        changed_one(self.write(query).await?, MetadataError::NotFound)
    }

    async fn api_token_account(&self, token_hash: &str) -> Result<Option<(Account, ApiToken)>> {
        let query = sqlx::query(select_accounts!(
            ", t.uuid, t.name, t.created_at, t.expires_at, t.last_accessed
             FROM api_tokens t JOIN accounts a ON a.id = t.account_id WHERE t.token_hash = $1"
        ))
        .bind(token_hash);
        self.read_one(query, |r| {
            let account = account(r)?;
            let token = ApiToken {
                uuid: stored(r.get(8))?,
                name: r.get(9),
                account: account.name.clone(),
                created_at: r.get(10),
                expires_at: r.get(11),
                last_accessed: r.get(12),
            };
            Ok((account, token))
        })
        .await
    }

    async fn touch_api_token(&self, uuid: uuid::Uuid, at: i64) -> Result<()> {
        let query = sqlx::query("UPDATE api_tokens SET last_accessed = $1 WHERE uuid = $2")
            .bind(at)
            .bind(uuid.to_string());
        self.write(query).await?;
        Ok(())
    }

    async fn purge_expired_api_tokens(&self, before: i64) -> Result<u64> {
        let query = sqlx::query("DELETE FROM api_tokens WHERE expires_at < $1").bind(before);
        self.write(query).await
    }

    async fn api_tokens(&self, owner: Option<i64>) -> Result<Vec<ApiToken>> {
        let query = sqlx::query(
            "SELECT t.uuid, t.name, a.name, t.created_at, t.expires_at, t.last_accessed
             FROM api_tokens t JOIN accounts a ON a.id = t.account_id
             WHERE $1 IS NULL OR t.account_id = $1 ORDER BY a.name, t.created_at, t.id",
        )
        .bind(owner);
        self.read_all(query, |r| {
            Ok(ApiToken {
                uuid: stored(r.get(0))?,
                name: r.get(1),
                account: r.get(2),
                created_at: r.get(3),
                expires_at: r.get(4),
                last_accessed: r.get(5),
            })
        })
        .await
    }

    async fn revoke_api_token(&self, uuid: uuid::Uuid, owner: Option<i64>) -> Result<bool> {
        let query = sqlx::query(
            "DELETE FROM api_tokens WHERE uuid = $1 AND ($2 IS NULL OR account_id = $2)",
        )
        .bind(uuid.to_string())
        .bind(owner);
        Ok(self.write(query).await? > 0)
    }

    async fn signing_keys(&self, candidate: (&str, &str)) -> Result<Vec<(String, String)>> {
        // Replicas starting at once must agree on one first key: a lock held for the
        // transaction makes "insert when there is none" atomic across connections.
        let mut tx = self.begin().await?;
        self.lock(&mut tx, LockMode::Exclusive, b"skey", 0).await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_pem, created_at)
             SELECT $1, $2, $3 WHERE NOT EXISTS (SELECT 1 FROM signing_keys)",
        )
        .bind(candidate.0)
        .bind(candidate.1)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        let keys =
            sqlx::query_as("SELECT kid, private_pem FROM signing_keys ORDER BY created_at, kid")
                .fetch_all(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(keys)
    }

    async fn create_session(
        &self,
        token_hash: &str,
        account: &str,
        csrf: &str,
        expires_at: i64,
    ) -> Result<()> {
        let now = now_millis();
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "INSERT INTO sessions (token_hash, account_id, csrf, created_at, expires_at)
             SELECT $1, id, $3, $4, $5 FROM accounts WHERE name = $2 AND kind = 'user'",
        )
        .bind(token_hash)
        .bind(account)
        .bind(csrf)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(conflict)?;
        changed_one(done.rows_affected(), MetadataError::NotFound)?;
        Ok(tx.commit().await?)
    }

    async fn session(&self, token_hash: &str, now: i64) -> Result<Option<Session>> {
        let query = sqlx::query(select_accounts!(
            ", s.csrf, s.expires_at FROM sessions s JOIN accounts a ON a.id = s.account_id
             WHERE s.token_hash = $1 AND s.expires_at > $2"
        ))
        .bind(token_hash)
        .bind(now);
        self.read_one(query, |r| {
            Ok(Session {
                account: account(r)?,
                csrf: r.get(8),
                expires_at: r.get(9),
            })
        })
        .await
    }

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let query = sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash);
        self.write(query).await.map(drop)
    }
}
