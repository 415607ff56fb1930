//! `kubectl switchyard status ROUTE [--watch]`: the route's migration on one screen, once or
//! redrawn from a watch of the route and its Events.

pub mod render;
#[cfg(test)]
mod tests;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use futures::StreamExt;
use futures::future::Either;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::store::Writer;
use kube::runtime::{WatchStreamExt, watcher};

use super::Target;
use crate::api::ModelRoute;
pub use render::{RouteEvent, View, render};

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub target: Target,
    /// Keep watching: redraw on every change of the route or of its Events (in place on a
    /// terminal; appended blocks when piped).
    #[arg(short, long)]
    pub watch: bool,
}

/// Moves the cursor to the top left corner.
const HOME: &str = "\x1b[H";
/// Clears from the cursor to the end of its line.
const CLEAR_LINE: &str = "\x1b[K";
/// Clears from the cursor to the end of the screen.
const CLEAR_BELOW: &str = "\x1b[J";

/// One screen as written to stdout. On a terminal it replaces the previous one in place:
/// cursor home, each line cleared after its text and everything below the last one cleared
/// (drawing over the old screen instead of blanking it first, so nothing flickers). Piped, it
/// is the plain text, after a blank line from the previous block: no escape codes in a file.
pub fn frame(text: &str, tty: bool, first: bool) -> String {
    if !tty {
        return if first {
            text.to_string()
        } else {
            format!("\n{text}")
        };
    }
    let mut out = String::from(HOME);
    for line in text.lines() {
        out.push_str(line);
        out.push_str(CLEAR_LINE);
        out.push('\n');
    }
    out.push_str(CLEAR_BELOW);
    out
}

/// Selects the Events about one ModelRoute of the namespace.
fn events_selector(route: &str) -> String {
    format!("involvedObject.kind=ModelRoute,involvedObject.name={route}")
}

pub async fn run(args: StatusArgs) -> anyhow::Result<()> {
    let (client, ns) = super::client(&args.target).await?;
    let routes: Api<ModelRoute> = Api::namespaced(client.clone(), &ns);
    let events: Api<Event> = Api::namespaced(client, &ns);
    let name = &args.target.route;
    if args.watch {
        return watch(routes, events, &ns, name).await;
    }
    let mr = routes
        .get(name)
        .await
        .map_err(|e| anyhow::anyhow!("modelroute {ns}/{name}: {e}"))?;
    let listed = events
        .list(&ListParams::default().fields(&events_selector(name)))
        .await;
    let (list, error) = match listed {
        Ok(l) => (
            l.items.iter().filter_map(RouteEvent::from_event).collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let view = View {
        route: &mr,
        events: &list,
        events_error: error.as_deref(),
    };
    Ok(super::write_stdout(
        render(&view, Timestamp::now()).as_bytes(),
    )?)
}

/// What the two watches have delivered so far.
struct Watched {
    routes: Writer<ModelRoute>,
    routes_synced: bool,
    events: Writer<Event>,
    events_synced: bool,
    events_error: Option<String>,
}

impl Watched {
    /// The screen, once both watches have listed what exists.
    fn screen(&self, ns: &str, name: &str) -> Option<String> {
        if !(self.routes_synced && (self.events_synced || self.events_error.is_some())) {
            return None;
        }
        let reader = self.routes.as_reader();
        let Some(mr) = reader.state().into_iter().next() else {
            return Some(format!(
                "modelroute {ns}/{name} does not exist (deleted?); watching for it\n"
            ));
        };
        let events: Vec<RouteEvent> = self
            .events
            .as_reader()
            .state()
            .iter()
            .filter_map(|e| RouteEvent::from_event(e))
            .collect();
        let view = View {
            route: &mr,
            events: &events,
            events_error: self.events_error.as_deref(),
        };
        Some(render(&view, Timestamp::now()))
    }
}

/// Redraws on every change the watches bring. On a terminal the screen is also redrawn each
/// second from what is already held, so "3s ago" stays true; that reads nothing from the API
/// server. A route that does not exist when the watch starts is an error, as for `get`.
async fn watch(
    routes: Api<ModelRoute>,
    events: Api<Event>,
    ns: &str,
    name: &str,
) -> anyhow::Result<()> {
    let tty = std::io::stdout().is_terminal();
    let route_changes = watcher(
        routes,
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .map(Either::Left)
    .boxed();
    let event_changes = watcher(
        events,
        watcher::Config::default().fields(&events_selector(name)),
    )
    .default_backoff()
    .map(Either::Right)
    .boxed();
    let mut changes = futures::stream::select(route_changes, event_changes);
    let mut state = Watched {
        routes: Writer::default(),
        routes_synced: false,
        events: Writer::default(),
        events_synced: false,
        events_error: None,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut shown: Option<String> = None;
    loop {
        tokio::select! {
            change = changes.next() => match change {
                None => return Ok(()),
                Some(Either::Left(Ok(e))) => {
                    state.routes.apply_watcher_event(&e);
                    if matches!(e, watcher::Event::InitDone) {
                        if !state.routes_synced && state.routes.as_reader().is_empty() {
                            anyhow::bail!("modelroute {ns}/{name} not found");
                        }
                        state.routes_synced = true;
                    }
                }
                Some(Either::Left(Err(e))) => eprintln!("watching modelroute {ns}/{name}: {e}"),
                Some(Either::Right(Ok(e))) => {
                    state.events.apply_watcher_event(&e);
                    if matches!(e, watcher::Event::InitDone) {
                        state.events_synced = true;
                        state.events_error = None;
                    }
                }
                // Events are the history, not the migration: without them (e.g. no permission
                // to list Events) the rest is still shown, with the reason.
                Some(Either::Right(Err(e))) => state.events_error = Some(e.to_string()),
            },
            _ = tick.tick(), if tty => {}
        }
        let Some(screen) = state.screen(ns, name) else {
            continue;
        };
        if shown.as_ref() == Some(&screen) {
            continue;
        }
        let out = frame(&screen, tty, shown.is_none());
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
        {
            // A reader that went away (`| head`) ends the watch quietly.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(e.into());
        }
        shown = Some(screen);
    }
}
