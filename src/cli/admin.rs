//! Administration commands: users, organizations, teams, robots, repositories and API tokens,
//! working directly on the metadata database of a running or stopped berth.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Subcommand;
use oci::RepoName;

use berth::auth::api_token::{self, ApiTokenError};
use berth::auth::secret;
use berth::config::DatabaseUri;
use berth::metadata::accounts::{AccountKind, AccountStore, Grantee, Role, TeamRole};
use berth::metadata::{MetadataError, Store};

/// Where the metadata database is.
#[derive(clap::Args)]
pub struct Target {
    /// Data directory of the berth to administer.
    #[arg(
        long,
        default_value = "./berth-data",
        value_name = "DIR",
        global = true
    )]
    pub data_dir: PathBuf,
    /// The berth config file; its `DB_URI` says which database to administer
    /// (`BERTH_DB_URI` in the environment overrides it).
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input.
    Create {
        name: String,
        /// Make the user a superuser.
        #[arg(long)]
        superuser: bool,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
    },
    /// Set a user's password, read from standard input.
    SetPassword {
        name: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Delete a user.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization owned by USER (who joins its `owners` admin team).
    Create {
        name: String,
        #[arg(long, value_name = "USER")]
        owner: String,
    },
    /// List organizations.
    List,
    /// Delete an organization.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum TeamCommand {
    /// Create or update a team with a role: member, creator or admin.
    Create {
        org: String,
        name: String,
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// Add a user or robot to a team.
    AddMember {
        org: String,
        team: String,
        member: String,
    },
    /// Remove a member from a team.
    RemoveMember {
        org: String,
        team: String,
        member: String,
    },
    /// List the teams of an organization with their members.
    List { org: String },
    /// Delete a team.
    Delete { org: String, name: String },
}

#[derive(Subcommand)]
pub enum RobotCommand {
    /// Create robot NAMESPACE+NAME and print its token (shown only once).
    Create { name: String },
    /// Replace a robot's token and print the new one.
    Regenerate { name: String },
    /// List the robots of a namespace.
    List { namespace: String },
    /// Delete a robot.
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Create a repository.
    Create {
        name: String,
        /// Make it public (anyone may pull).
        #[arg(long)]
        public: bool,
    },
    /// Set visibility: public or private.
    Visibility { name: String, visibility: String },
    /// Grant a role (read, write, admin) to a user, robot or team.
    Grant {
        name: String,
        #[arg(long, conflicts_with = "team")]
        user: Option<String>,
        #[arg(long)]
        team: Option<String>,
        #[arg(long)]
        role: String,
    },
    /// Revoke a user's, robot's or team's permission.
    Revoke {
        name: String,
        #[arg(long, conflicts_with = "team")]
        user: Option<String>,
        #[arg(long)]
        team: Option<String>,
    },
    /// List a repository's permissions.
    Permissions { name: String },
    /// Delete a repository (its content is left to garbage collection).
    Delete { name: String },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user (a bearer token for /api/v1 and /v2; printed once).
    Create {
        /// The user (also accepted as `--user`).
        #[arg(value_name = "USER", required_unless_present = "user_option")]
        user: Option<String>,
        #[arg(long = "user", value_name = "USER", conflicts_with = "user")]
        user_option: Option<String>,
        /// The token's title.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Lifetime in Quay's format (30d, 12h, 90m, 2w); default: the config's
        /// `APP_SPECIFIC_TOKEN_EXPIRATION`, else never.
        #[arg(long, value_name = "DURATION")]
        expires_in: Option<String>,
    },
    /// List API tokens (every user's, or one's): uuid, title, owner, created, expires. Never
    /// the secrets, which berth does not keep.
    List {
        #[arg(long, value_name = "USER")]
        user: Option<String>,
    },
    /// Revoke an API token by its uuid; the next request with it is refused.
    Revoke {
        #[arg(value_name = "UUID")]
        id: String,
    },
}

/// The settings of the berth `target` names: its config file, or the defaults.
pub fn settings(target: &Target) -> anyhow::Result<berth::config::Settings> {
    Ok(match &target.config {
        Some(path) => berth::config::load(path)?.settings,
        None => berth::config::Settings::default(),
    })
}

/// The metadata database of the berth `target` names.
pub async fn store(target: &Target) -> anyhow::Result<Arc<dyn Store>> {
    let settings = settings(target)?;
    let uri = berth::database_uri(&target.data_dir, &settings)?;
    if let DatabaseUri::Sqlite(path) = &uri {
        if !path.exists() {
            bail!(
                "no berth database at {} (use --data-dir, or --config with DB_URI)",
                path.display()
            );
        }
    }
    berth::open_metadata(&uri).await
}

fn read_password() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("cannot read the password from standard input")?;
    let p = s.trim_end_matches(['\n', '\r']).to_string();
    if p.len() < 8 {
        bail!("password must have at least 8 characters");
    }
    Ok(p)
}

fn explain(e: MetadataError, what: &str) -> anyhow::Error {
    match e {
        MetadataError::Conflict => anyhow::anyhow!("{what} already exists"),
        MetadataError::NotFound => anyhow::anyhow!("{what}: a name it refers to does not exist"),
        MetadataError::Refused(why) => anyhow::anyhow!("{why}"),
        other => anyhow::Error::new(other),
    }
}

fn valid_account_name(name: &str) -> anyhow::Result<()> {
    // A namespace is the first component of repository names, so it must be one.
    let ok = name.parse::<RepoName>().is_ok() && !name.contains('/') && name.len() <= 255;
    if !ok {
        bail!(
            "{name:?} is not a valid namespace name (lowercase letters, digits, and . _ - inside)"
        );
    }
    Ok(())
}

fn repo_name(name: &str) -> anyhow::Result<RepoName> {
    name.parse().map_err(|e| anyhow::anyhow!("{name:?}: {e}"))
}

fn grantee(user: Option<String>, team: Option<String>) -> anyhow::Result<Grantee> {
    match (user, team) {
        (Some(u), None) => Ok(Grantee::Account(u)),
        (None, Some(t)) => Ok(Grantee::Team(t)),
        _ => bail!("give exactly one of --user or --team"),
    }
}

pub async fn user(target: &Target, cmd: UserCommand) -> anyhow::Result<()> {
    let s = store(target).await?;
    match cmd {
        UserCommand::Create {
            name,
            superuser,
            email,
            ..
        } => {
            valid_account_name(&name)?;
            let password = read_password()?;
            let hash = secret::hash_password(&password);
            s.create_user(&name, &hash, email.as_deref(), superuser)
                .await
                .map_err(|e| explain(e, &format!("account {name}")))?;
            println!(
                "created user {name}{}",
                if superuser { " (superuser)" } else { "" }
            );
        }
        UserCommand::SetPassword { name, .. } => {
            let password = read_password()?;
            s.set_password(&name, &secret::hash_password(&password))
                .await
                .map_err(|e| explain(e, &format!("user {name}")))?;
            println!("password of {name} changed");
        }
        UserCommand::List => {
            for a in s.list_accounts(AccountKind::User).await? {
                println!("{}{}", a.name, if a.superuser { "\tsuperuser" } else { "" });
            }
        }
        UserCommand::Delete { name } => delete_account(&*s, &name, AccountKind::User).await?,
    }
    Ok(())
}

async fn delete_account(s: &dyn AccountStore, name: &str, kind: AccountKind) -> anyhow::Result<()> {
    match s.account(name).await? {
        Some(a) if a.kind == kind => {
            s.delete_account(name).await?;
            println!("deleted {} {name}", kind.as_str());
            Ok(())
        }
        _ => bail!("no {} named {name}", kind.as_str()),
    }
}

pub async fn org(target: &Target, cmd: OrgCommand) -> anyhow::Result<()> {
    let s = store(target).await?;
    match cmd {
        OrgCommand::Create { name, owner } => {
            valid_account_name(&name)?;
            s.create_organization(&name, &owner)
                .await
                .map_err(|e| explain(e, &format!("organization {name} (owner {owner})")))?;
            println!("created organization {name} owned by {owner}");
        }
        OrgCommand::List => {
            for a in s.list_accounts(AccountKind::Organization).await? {
                println!("{}", a.name);
            }
        }
        OrgCommand::Delete { name } => {
            delete_account(&*s, &name, AccountKind::Organization).await?
        }
    }
    Ok(())
}

pub async fn team(target: &Target, cmd: TeamCommand) -> anyhow::Result<()> {
    let s = store(target).await?;
    match cmd {
        TeamCommand::Create { org, name, role } => {
            let role = TeamRole::parse(&role).context("role must be member, creator or admin")?;
            valid_account_name(&name)?;
            s.put_team(&org, &name, role, "")
                .await
                .map_err(|e| explain(e, &format!("organization {org}")))?;
            println!("team {org}/{name} has role {}", role.as_str());
        }
        TeamCommand::AddMember { org, team, member } => {
            s.add_team_member(&org, &team, &member)
                .await
                .map_err(|e| explain(e, &format!("team {org}/{team} or member {member}")))?;
            println!("{member} is a member of {org}/{team}");
        }
        TeamCommand::RemoveMember { org, team, member } => {
            if !s.remove_team_member(&org, &team, &member).await? {
                bail!("{member} is not a member of {org}/{team}");
            }
            println!("{member} removed from {org}/{team}");
        }
        TeamCommand::List { org } => {
            for t in s.list_teams(&org).await? {
                let members: Vec<String> = s
                    .team_members(&org, &t.name)
                    .await?
                    .into_iter()
                    .map(|a| a.name)
                    .collect();
                println!("{}\t{}\t{}", t.name, t.role.as_str(), members.join(","));
            }
        }
        TeamCommand::Delete { org, name } => {
            if !s.delete_team(&org, &name).await? {
                bail!("no team {org}/{name}");
            }
            println!("deleted team {org}/{name}");
        }
    }
    Ok(())
}

fn split_robot(name: &str) -> anyhow::Result<(&str, &str)> {
    let (ns, short) = name
        .split_once('+')
        .context("robot names are NAMESPACE+NAME")?;
    valid_account_name(ns)?;
    if short.is_empty()
        || !short
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        bail!("robot short names use lowercase letters, digits and _");
    }
    Ok((ns, short))
}

pub async fn robot(target: &Target, cmd: RobotCommand) -> anyhow::Result<()> {
    let s = store(target).await?;
    match cmd {
        RobotCommand::Create { name } => {
            let (ns, short) = split_robot(&name)?;
            let token = secret::random_token("");
            s.create_robot(ns, short, &secret::token_hash(&token))
                .await
                .map_err(|e| explain(e, &format!("robot {name} (namespace {ns})")))?;
            println!("{token}");
            eprintln!("created robot {name}; its token is shown once, above");
        }
        RobotCommand::Regenerate { name } => {
            split_robot(&name)?;
            let token = secret::random_token("");
            s.set_robot_token(&name, &secret::token_hash(&token))
                .await
                .map_err(|e| explain(e, &format!("robot {name}")))?;
            println!("{token}");
        }
        RobotCommand::List { namespace } => {
            for r in s.list_robots(&namespace).await? {
                println!("{}", r.name);
            }
        }
        RobotCommand::Delete { name } => delete_account(&*s, &name, AccountKind::Robot).await?,
    }
    Ok(())
}

pub async fn repo(target: &Target, cmd: RepoCommand) -> anyhow::Result<()> {
    let s = store(target).await?;
    match cmd {
        RepoCommand::Create { name, public } => {
            let repo = repo_name(&name)?;
            if s.account(repo.namespace()).await?.is_none() {
                bail!("namespace {} does not exist", repo.namespace());
            }
            s.create_repository(&repo, public, "", None)
                .await
                .map_err(|e| explain(e, &format!("repository {name}")))?;
            println!(
                "created {} repository {name}",
                if public { "public" } else { "private" }
            );
        }
        RepoCommand::Visibility { name, visibility } => {
            let public = match visibility.as_str() {
                "public" => true,
                "private" => false,
                _ => bail!("visibility is public or private"),
            };
            if !s.set_visibility(&repo_name(&name)?, public).await? {
                bail!("no repository {name}");
            }
            println!("{name} is {visibility}");
        }
        RepoCommand::Grant {
            name,
            user,
            team,
            role,
        } => {
            let role = Role::parse(&role).context("role must be read, write or admin")?;
            let g = grantee(user, team)?;
            s.set_permission(&repo_name(&name)?, &g, role)
                .await
                .map_err(|e| explain(e, &format!("repository {name} or grantee")))?;
            println!("granted {} on {name}", role.as_str());
        }
        RepoCommand::Revoke { name, user, team } => {
            if !s
                .remove_permission(&repo_name(&name)?, &grantee(user, team)?)
                .await?
            {
                bail!("no such permission on {name}");
            }
            println!("revoked");
        }
        RepoCommand::Permissions { name } => {
            for p in s.list_permissions(&repo_name(&name)?).await? {
                let who = match p.grantee {
                    Grantee::Account(a) => {
                        format!("{}:{a}", p.kind.map_or("user", AccountKind::as_str))
                    }
                    Grantee::Team(t) => format!("team:{t}"),
                };
                println!("{who}\t{}", p.role.as_str());
            }
        }
        RepoCommand::Delete { name } => {
            if !s.delete_repository(&repo_name(&name)?).await? {
                bail!("no repository {name}");
            }
            println!("deleted {name}");
        }
    }
    Ok(())
}

pub async fn token(target: &Target, cmd: TokenCommand) -> anyhow::Result<()> {
    let s = store(target).await?;
    match cmd {
        TokenCommand::Create {
            user,
            user_option,
            name,
            expires_in,
        } => {
            let user = user.or(user_option).context("name the user")?;
            let lifetime = match expires_in {
                Some(text) => Some(
                    berth::gc::parse_expiration(&text)
                        .filter(|d| !d.is_zero())
                        .with_context(|| {
                            format!(
                                "--expires-in {text:?}: give a duration such as 30d, 12h or 90m"
                            )
                        })?,
                ),
                None => settings(target)?.auth.api_token_expiration,
            };
            let keep_expired = settings(target)?.auth.expired_api_token_gc;
            let (token, secret) = api_token::create(&*s, &user, &name, lifetime, keep_expired)
                .await
                .map_err(|e| match e {
                    ApiTokenError::Metadata(e) => explain(e, &format!("user {user}")),
                    other => anyhow::Error::new(other),
                })?;
            println!("{secret}");
            eprintln!(
                "created API token {} ({:?}) for {user}, expiring {}; it is shown once, above",
                token.uuid,
                token.name,
                expiry(token.expires_at)
            );
        }
        TokenCommand::List { user } => {
            let owner = match user {
                Some(name) => match s.account(&name).await? {
                    Some(a) if a.kind == AccountKind::User => Some(a.id),
                    _ => bail!("no user named {name}"),
                },
                None => None,
            };
            let now = api_token::now_millis();
            for t in s.api_tokens(owner).await? {
                let mut expires = expiry(t.expires_at);
                if api_token::expired(t.expires_at, now) {
                    expires.push_str(" (expired)");
                }
                let created = rfc3339_millis(t.created_at);
                let used = t.last_accessed.map_or("never".into(), rfc3339_millis);
                println!(
                    "{}\t{}\t{}\t{created}\t{used}\t{expires}",
                    t.uuid, t.name, t.account
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let uuid = uuid::Uuid::parse_str(&id).map_err(|_| {
                anyhow::anyhow!("{id:?} is not a token uuid (see `berth token list`)")
            })?;
            if !s.revoke_api_token(uuid, None).await? {
                bail!("no API token {uuid}");
            }
            println!("revoked API token {uuid}");
        }
    }
    Ok(())
}

/// A time in milliseconds as RFC 3339.
fn rfc3339_millis(millis: i64) -> String {
    berth::api::dates::rfc3339((millis.max(0) / 1000) as u64)
}

/// When a token expires, for people.
fn expiry(expires_at: Option<i64>) -> String {
    expires_at.map_or_else(|| "never".into(), rfc3339_millis)
}
