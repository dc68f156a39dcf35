//! API tokens, the caller's own identity, and the audit log.

use async_graphql::{Context, ID, Json, Object, SimpleObject};
use serde_json::Value;

use super::{page, reader, state, time, time_opt, who};
use crate::auth::Role;
use crate::error::IntoGql as _;
use crate::services::tokens as service;
use crate::store::audit::{self, AuditRow};
use crate::store::tokens::{self, TokenRow};

pub struct Token(pub TokenRow);

#[Object]
impl Token {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn role(&self) -> Role {
        self.0.role
    }
    /// The cluster an agent token is bound to.
    async fn cluster_id(&self) -> Option<ID> {
        self.0.cluster_id.clone().map(ID)
    }
    async fn created_at(&self) -> String {
        time(self.0.created_at)
    }
    async fn last_used_at(&self) -> Option<String> {
        time_opt(self.0.last_used_at)
    }
}

/// A new token: `secret` is shown this once and stored only as a hash.
#[derive(SimpleObject)]
pub struct CreateTokenPayload {
    token: Token,
    secret: String,
}

pub struct AuditEntry(AuditRow);

/// One mutation: who did what to which object, when.
#[Object]
impl AuditEntry {
    async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn at(&self) -> String {
        time(self.0.at)
    }
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    async fn role(&self) -> &str {
        &self.0.role
    }
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn target_kind(&self) -> &str {
        &self.0.target_kind
    }
    async fn target_id(&self) -> &str {
        &self.0.target_id
    }
    async fn detail(&self) -> Json<&Value> {
        Json(&self.0.detail)
    }
}

/// The caller, as the server sees it.
#[derive(SimpleObject)]
pub struct Me {
    name: String,
    role: Role,
    cluster_id: Option<ID>,
}

#[derive(Default)]
pub struct TokenQuery;

#[Object]
impl TokenQuery {
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Me> {
        let who = who(ctx)?;
        Ok(Me {
            name: who.name.clone(),
            role: who.role,
            cluster_id: who.cluster_id.clone().map(ID),
        })
    }

    /// The server's version (its build's package version), for `styrminctl version`.
    async fn server_version(&self, ctx: &Context<'_>) -> async_graphql::Result<&'static str> {
        who(ctx)?;
        Ok(env!("CARGO_PKG_VERSION"))
    }

    async fn tokens(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Token>> {
        who(ctx)?.can_administer().gql()?;
        let mut c = state(ctx).db.read().await?;
        Ok(tokens::list(&mut c).await?.into_iter().map(Token).collect())
    }

    /// Newest first; `target` limits it to one object's id.
    #[graphql(complexity = "super::list_cost(first, child_complexity)")]
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        target: Option<ID>,
        first: Option<i32>,
        offset: Option<i32>,
    ) -> async_graphql::Result<Vec<AuditEntry>> {
        reader(ctx)?;
        let mut c = state(ctx).db.read().await?;
        Ok(audit::list(
            &mut c,
            target.as_ref().map(|t| t.as_str()),
            page(first, offset),
        )
        .await?
        .into_iter()
        .map(AuditEntry)
        .collect())
    }
}

#[derive(Default)]
pub struct TokenMutation;

#[Object]
impl TokenMutation {
    /// A token for a person or script (`admin`, `operator`, `viewer`) or an extra agent
    /// token bound to `cluster`.
    async fn create_token(
        &self,
        ctx: &Context<'_>,
        name: String,
        role: Role,
        cluster: Option<ID>,
    ) -> async_graphql::Result<CreateTokenPayload> {
        let (token, secret) = service::create_token(
            state(ctx),
            who(ctx)?,
            &name,
            role,
            cluster.as_ref().map(|c| c.as_str()),
        )
        .await
        .gql()?;
        Ok(CreateTokenPayload {
            token: Token(token),
            secret,
        })
    }

    /// Revokes a token by id or name.
    async fn delete_token(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Token> {
        service::delete_token(state(ctx), who(ctx)?, &id)
            .await
            .gql()
            .map(Token)
    }
}
