//! Limits every GraphQL operation meets before and after it runs, beyond the schema's depth
//! and cost limits: a cap on aliases (one field asked for many times under other names),
//! a cap on the response's size, a code on transient database errors, and — on a WebSocket, whose caller was authenticated once
//! at `connection_init` — a check before each operation that the token was not revoked
//! since.

use std::sync::Arc;

use futures::StreamExt as _;
use futures::stream::BoxStream;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextResolve, NextSubscribe, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Request, Response, ServerError, ServerResult, Value, Variables};

use crate::crypto::token_hash;
use crate::state::AppState;
use crate::store::tokens;

/// The most aliased fields one document may hold.
pub const MAX_ALIASES: usize = 32;
/// The largest response (its data as JSON) an operation may return.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// The token a WebSocket connection was opened with, kept in its connection data.
#[derive(Clone)]
pub struct SocketToken(pub String);

pub struct Guard;

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Guard)
    }
}

fn error(message: String, code: &'static str) -> ServerError {
    let mut e = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code);
    e.extensions = Some(extensions);
    e
}

fn aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + aliases(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => aliases(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Aliased fields written in the document (each fragment counted once, where written).
pub fn alias_count(doc: &ExecutableDocument) -> usize {
    let in_operations: usize = doc
        .operations
        .iter()
        .map(|(_, op)| aliases(&op.node.selection_set.node))
        .sum();
    let in_fragments: usize = doc
        .fragments
        .values()
        .map(|f| aliases(&f.node.selection_set.node))
        .sum();
    in_operations + in_fragments
}

/// Refused when the socket's token no longer exists.
async fn check_socket_token(state: &AppState, token: &str) -> ServerResult<()> {
    let mut c = state
        .db
        .read()
        .await
        .map_err(|e| error(format!("database: {e}"), "UNAVAILABLE"))?;
    let found = tokens::by_hash(&mut c, &token_hash(token))
        .await
        .map_err(|e| error(format!("database: {e}"), "UNAVAILABLE"))?;
    match found {
        Some(_) => Ok(()),
        None => Err(error(
            "the token this connection was opened with was revoked".into(),
            "UNAUTHORIZED",
        )),
    }
}

#[async_trait::async_trait]
impl Extension for Guard {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let (Some(SocketToken(token)), Some(state)) =
            (ctx.data_opt::<SocketToken>(), ctx.data_opt::<AppState>())
        {
            check_socket_token(state, token).await?;
        }
        next.run(ctx, request).await
    }

    /// A running subscription checks its token before each item it sends, and ends with an
    /// error once the token is revoked.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let stream = next.run(ctx, stream);
        let (Some(SocketToken(token)), Some(state)) =
            (ctx.data_opt::<SocketToken>(), ctx.data_opt::<AppState>())
        else {
            return stream;
        };
        let watch = Some((token.clone(), state.clone()));
        Box::pin(futures::stream::unfold(
            (stream, watch),
            |(mut stream, watch)| async move {
                let (token, state) = watch?;
                let item = stream.next().await?;
                match check_socket_token(&state, &token).await {
                    Ok(()) => Some((item, (stream, Some((token, state))))),
                    Err(e) => Some((Response::from_errors(vec![e]), (stream, None))),
                }
            },
        ))
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let n = alias_count(&doc);
        if n > MAX_ALIASES {
            return Err(error(
                format!("the query uses {n} aliases, more than the limit of {MAX_ALIASES}"),
                "QUERY_TOO_COSTLY",
            ));
        }
        Ok(doc)
    }

    /// A database error that passes on its own (busy, restarting) carries the code
    /// `UNAVAILABLE` however it reached GraphQL, so the HTTP layer answers 503.
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        next.run(ctx, info).await.map_err(|mut e| {
            let coded = e
                .extensions
                .as_ref()
                .is_some_and(|x| x.get("code").is_some());
            if !coded && crate::error::is_transient_message(&e.message) {
                e.extensions
                    .get_or_insert_with(Default::default)
                    .set("code", "UNAVAILABLE");
            }
            e
        })
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let response = next.run(ctx, operation_name).await;
        let size = serde_json::to_vec(&response.data).map_or(0, |v| v.len());
        if size > MAX_RESPONSE_BYTES {
            return Response::from_errors(vec![error(
                format!(
                    "the response would be {size} bytes, more than the limit of {MAX_RESPONSE_BYTES}: ask for fewer items (`first:`) or fields"
                ),
                "RESPONSE_TOO_LARGE",
            )]);
        }
        response
    }
}
