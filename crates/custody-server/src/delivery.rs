//! Notifications: the `[notify]` configuration and the delivery worker.
//!
//! The ledger decides what is owed (every event carries the notifications it
//! owes, queued in the outbox in the event's own transaction; see
//! `custody_core::notice`). This module turns the configuration into that
//! routing, and runs the worker that delivers the outbox: it leases due rows,
//! delivers each through its channel (`custody-notify`), and records every
//! attempt as a `notification_attempted` event of the case. A failure is
//! retried with exponential backoff and jitter until `max_attempts`; then the
//! notification is dead and escalated to the `escalation` route. A worker
//! that dies mid-delivery loses nothing: its lease expires and another
//! worker (or the restarted one) delivers again with the same delivery ID,
//! which receivers use to drop duplicates.
//!
//! ```toml
//! [[notify.channels]]
//! type = "webhook"
//! name = "siem"
//! url = "https://siem.example.com/custody"
//! secret = "a long random string"
//!
//! [notify.routes]                 # audience = ["CHANNEL" or "CHANNEL:RECIPIENT", ...]
//! approvers = ["siem"]
//! escalation = ["siem"]
//!
//! [notify.rules.prod-admin]       # per policy rule: replaces those audiences' routes
//! approvers = ["siem:dba-leads"]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custody_core::event::{Attempt, DeliveryOutcome};
use custody_core::notice::{Audience, Route, Routing};
use custody_core::Timestamp;
use custody_notify::{Channel, ChannelConfig, Notification};
use custody_store::{ClaimedDelivery, Store};
use serde::Deserialize;

/// The `[notify]` section of the configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The channels (`[[notify.channels]]`), each with a unique `name`.
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
    /// Routes per audience. Without any, every audience goes to every channel.
    #[serde(default)]
    pub routes: BTreeMap<String, Vec<String>>,
    /// Routes per policy rule (by rule name), replacing those audiences' routes.
    #[serde(default)]
    pub rules: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    /// Attempts before a notification is given up on and escalated.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The wait before the second attempt, in milliseconds; it doubles after
    /// each failure (with jitter) up to `backoff_max_ms`.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// The longest wait between attempts, in milliseconds.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// How long a worker holds a notification it is delivering; after that
    /// another worker may deliver it (at least once).
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// How often the worker looks for due notifications, in milliseconds.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Deliveries in flight at once per node.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Link to a case in notifications; `{case}` is replaced by its ID.
    #[serde(default)]
    pub case_url: Option<String>,
}

fn default_max_attempts() -> u32 {
    8
}
fn default_backoff_initial_ms() -> u64 {
    2_000
}
fn default_backoff_max_ms() -> u64 {
    300_000
}
fn default_lease_seconds() -> u64 {
    60
}
fn default_poll_interval_ms() -> u64 {
    500
}
fn default_concurrency() -> usize {
    8
}

impl Default for NotifyConfig {
    fn default() -> NotifyConfig {
        NotifyConfig {
            channels: Vec::new(),
            routes: BTreeMap::new(),
            rules: BTreeMap::new(),
            max_attempts: default_max_attempts(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            lease_seconds: default_lease_seconds(),
            poll_interval_ms: default_poll_interval_ms(),
            concurrency: default_concurrency(),
            case_url: None,
        }
    }
}

impl NotifyConfig {
    /// Checks the section and returns the routing it describes.
    /// `connectors` are the configured connectors' names and the ticket
    /// system each writes back to: a connector's name is a channel too
    /// (its write-back), which routes may name.
    pub fn routing(
        &self,
        policy: &custody_core::policy::Policy,
        connectors: &[(String, Option<String>)],
    ) -> Result<Routing, String> {
        let mut names = std::collections::HashSet::new();
        for channel in &self.channels {
            channel
                .validate()
                .map_err(|error| format!("notify channel `{}`: {error}", channel.name()))?;
            if !names.insert(channel.name()) {
                return Err(format!(
                    "two notify channels are named `{}`; channel names must be unique",
                    channel.name()
                ));
            }
        }
        let mut linked: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (connector, ticket_system) in connectors {
            if !names.insert(connector.as_str()) {
                return Err(format!(
                    "a notify channel and a connector are both named `{connector}`; a connector's name is the channel of its write-back, so the names must differ"
                ));
            }
            if let Some(system) = ticket_system {
                linked
                    .entry(system.clone())
                    .or_default()
                    .push(connector.clone());
            }
        }
        if !(1..=100).contains(&self.max_attempts) {
            return Err("notify.max_attempts must be between 1 and 100".to_string());
        }
        if self.backoff_initial_ms == 0 || self.backoff_max_ms < self.backoff_initial_ms {
            return Err(
                "notify.backoff_initial_ms must be above 0 and at most notify.backoff_max_ms"
                    .to_string(),
            );
        }
        let longest_timeout = self
            .channels
            .iter()
            .map(|channel| channel.timeout().as_secs())
            .max()
            .unwrap_or(0);
        if self.lease_seconds <= longest_timeout {
            return Err(format!(
                "notify.lease_seconds ({}) must be longer than the longest channel timeout ({longest_timeout}s), or a slow delivery would be sent twice",
                self.lease_seconds
            ));
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return Err("notify.poll_interval_ms must be between 10 and 60000".to_string());
        }
        if !(1..=256).contains(&self.concurrency) {
            return Err("notify.concurrency must be between 1 and 256".to_string());
        }
        let parse_routes = |table: &BTreeMap<String, Vec<String>>,
                            context: &str|
         -> Result<BTreeMap<Audience, Vec<Route>>, String> {
            let mut routes = BTreeMap::new();
            for (audience, entries) in table {
                let audience: Audience = audience
                    .parse()
                    .map_err(|error| format!("{context}: {error}"))?;
                if audience == Audience::Linked {
                    return Err(format!(
                        "{context}.linked: the linked audience is the connectors' write-back to the tickets and messages a case is bound to; it follows from [[connectors]] and is not routed here"
                    ));
                }
                let mut parsed = Vec::new();
                for entry in entries {
                    let route: Route = entry
                        .parse()
                        .map_err(|error| format!("{context}.{audience}: {error}"))?;
                    if !names.contains(route.channel.as_str()) {
                        return Err(format!(
                            "{context}.{audience}: no notify channel is named `{}`",
                            route.channel
                        ));
                    }
                    parsed.push(route);
                }
                routes.insert(audience, parsed);
            }
            Ok(routes)
        };
        let mut routes = parse_routes(&self.routes, "notify.routes")?;
        if routes.is_empty() && !self.channels.is_empty() {
            // Sane default: everyone is told everything on every channel.
            for audience in Audience::CONFIGURABLE {
                routes.insert(
                    audience,
                    self.channels
                        .iter()
                        .map(|channel| Route {
                            channel: channel.name().to_string(),
                            recipient: None,
                        })
                        .collect(),
                );
            }
        }
        let mut rules = BTreeMap::new();
        for (rule, table) in &self.rules {
            if !policy.rules.iter().any(|known| &known.name == rule) {
                return Err(format!(
                    "notify.rules.{rule}: no policy rule is named `{rule}`"
                ));
            }
            rules.insert(
                rule.clone(),
                parse_routes(table, &format!("notify.rules.{rule}"))?,
            );
        }
        Ok(Routing {
            routes,
            rules,
            linked,
        })
    }
}

/// The delivery worker of one node.
pub struct Deliverer {
    store: Store,
    channels: HashMap<String, Arc<Channel>>,
    connectors: crate::connectors::Connectors,
    config: NotifyConfig,
    owner: String,
}

impl Deliverer {
    /// Connects every configured channel (refusing a configuration that
    /// cannot work) and names this worker for its leases.
    pub async fn new(
        store: Store,
        config: NotifyConfig,
        connectors: crate::connectors::Connectors,
    ) -> Result<Deliverer, String> {
        let mut channels = HashMap::new();
        for channel in &config.channels {
            let connected = Channel::connect(channel)
                .await
                .map_err(|error| format!("notify channel `{}`: {error}", channel.name()))?;
            channels.insert(channel.name().to_string(), Arc::new(connected));
        }
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix)
            .map_err(|error| format!("no randomness available: {error}"))?;
        let owner = format!(
            "worker-{}-{}",
            std::process::id(),
            custody_core::hex::encode(&suffix)
        );
        Ok(Deliverer {
            store,
            channels,
            connectors,
            config,
            owner,
        })
    }

    /// Delivers the outbox until the task is aborted.
    ///
    /// The worker waits for the poll interval only when the last claim came
    /// back short (nothing more is due). While a backlog lasts it claims
    /// again as soon as a delivery slot frees, so a node delivers as fast as
    /// `concurrency` slots allow, not `concurrency` per poll interval.
    pub async fn run(self: Arc<Self>) {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(self.config.concurrency));
        let mut ticks = tokio::time::interval(Duration::from_millis(self.config.poll_interval_ms));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The backlog gauges are read at most once a second, not at every
        // poll: counting a large backlog is not free.
        let mut reported: Option<Instant> = None;
        let mut backlog = false;
        loop {
            if !backlog {
                ticks.tick().await;
            }
            if reported.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                self.report_backlog().await;
                reported = Some(Instant::now());
            }
            // Wait for a free slot, then take every slot free now: one
            // claim leases as many rows as can be delivered at once.
            let mut permits = vec![semaphore
                .clone()
                .acquire_owned()
                .await
                .expect("the delivery semaphore is never closed")];
            while let Ok(permit) = semaphore.clone().try_acquire_owned() {
                permits.push(permit);
            }
            let asked = permits.len();
            // The outbox's times (when a row is due, whose lease has
            // ended) are the store's: it writes a row's first due time when
            // it queues the notification. So they are compared with the
            // store's clock (which `custody serve` shares with the server's
            // timer; a test's, which only the test moves).
            let now = self.store.clock().now();
            let until = now.plus_unsigned_seconds(self.config.lease_seconds);
            let claimed = match self
                .store
                .claim_deliveries(
                    &self.owner,
                    now,
                    until,
                    u32::try_from(asked).unwrap_or(u32::MAX),
                )
                .await
            {
                Ok(claimed) => claimed,
                Err(error) => {
                    tracing::error!(%error, "claiming due notifications failed");
                    backlog = false;
                    continue;
                }
            };
            backlog = claimed.len() == asked;
            // Slots left unused go back with the permits not taken here.
            for (delivery, permit) in claimed.into_iter().zip(permits) {
                let worker = self.clone();
                tokio::spawn(async move {
                    worker.attempt(delivery).await;
                    drop(permit);
                });
            }
        }
    }

    async fn report_backlog(&self) {
        if let Ok((waiting, oldest)) = self.store.outbox_backlog().await {
            metrics::gauge!("custody_outbox_pending").set(waiting as f64);
            let age = oldest
                .and_then(|oldest| Timestamp::parse(&oldest).ok())
                .map(|oldest| {
                    (self.store.clock().now().as_micros() - oldest.as_micros()).max(0) as f64 / 1e6
                })
                .unwrap_or(0.0);
            metrics::gauge!("custody_outbox_oldest_seconds").set(age);
        }
    }

    /// One delivery attempt, recorded in the case whatever its outcome.
    async fn attempt(&self, delivery: ClaimedDelivery) {
        let number = delivery.attempts.saturating_add(1);
        let started = Instant::now();
        // A drill's deliveries are real, but left out of the channel
        // metrics (counted apart), so a drill never trips an alert.
        let mut drill = false;
        let result = match self.channels.get(&delivery.channel) {
            None if self.connectors.contains(&delivery.channel) => {
                match self.update(&delivery).await {
                    Ok(update) => self.connectors.write_back(&delivery.channel, &update).await,
                    Err(message) => Err(custody_notify::DeliveryError::permanent(message)),
                }
            }
            None => Err(custody_notify::DeliveryError {
                retryable: false,
                status: None,
                message: format!(
                    "no notify channel is named `{}` in the configuration any more",
                    delivery.channel
                ),
                retry_after: None,
            }),
            Some(channel) => match self.notification(&delivery).await {
                Ok(notification) => {
                    drill = notification.data.get("drill") == Some(&serde_json::Value::Bool(true));
                    channel
                        .deliver(&notification, delivery.recipient.as_deref())
                        .await
                }
                Err(message) => Err(custody_notify::DeliveryError {
                    retryable: false,
                    status: None,
                    message,
                    retry_after: None,
                }),
            },
        };
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let channel = delivery.channel.clone();
        let metric = |name: &'static str| -> &'static str {
            if drill {
                "custody_drill_notify_attempts_total"
            } else {
                name
            }
        };
        metrics::counter!(metric("custody_notify_attempts_total"), "channel" => channel.clone())
            .increment(1);
        let (outcome, status, error, next_attempt_at) = match result {
            Ok(delivered) => (DeliveryOutcome::Delivered, delivered.status, None, None),
            Err(failure) => {
                if !drill {
                    metrics::counter!("custody_notify_failures_total", "channel" => channel.clone())
                        .increment(1);
                }
                if failure.retryable && number < self.config.max_attempts {
                    let wait = self.backoff(number, failure.retry_after);
                    (
                        DeliveryOutcome::Failed,
                        failure.status,
                        Some(failure.message),
                        Some(Timestamp::from_micros(
                            self.store.clock().now().as_micros().saturating_add(
                                i64::try_from(wait.as_micros()).unwrap_or(i64::MAX),
                            ),
                        )),
                    )
                } else {
                    if !drill {
                        metrics::counter!("custody_notify_dead_total", "channel" => channel.clone())
                            .increment(1);
                    }
                    (
                        DeliveryOutcome::Dead,
                        failure.status,
                        Some(failure.message),
                        None,
                    )
                }
            }
        };
        if outcome != DeliveryOutcome::Delivered {
            tracing::warn!(
                delivery = %delivery.delivery_id,
                channel = %delivery.channel,
                attempt = number,
                outcome = outcome.as_str(),
                error = error.as_deref().unwrap_or_default(),
                "notification not delivered"
            );
        }
        let case_id = match delivery.case_id.parse() {
            Ok(case_id) => case_id,
            Err(error) => {
                tracing::error!(%error, delivery = %delivery.delivery_id, "outbox row names no case");
                return;
            }
        };
        let write = custody_store::CaseWrite {
            actor: custody_core::Actor::system(),
            idempotency_key: format!("delivery:{}:{number}", delivery.delivery_id),
            command: custody_core::command::LedgerCommand::RecordDelivery {
                case_id,
                attempt: Attempt {
                    delivery_id: delivery.delivery_id.clone(),
                    channel: delivery.channel.clone(),
                    recipient: delivery.recipient.clone(),
                    attempt: number,
                    outcome,
                    status,
                    error: error.map(|text| text.chars().take(1000).collect()),
                    latency_ms,
                },
                // An escalation notice that dies is not escalated in a loop.
                escalate: delivery.kind != "escalation",
                next_attempt_at,
            }
            .into(),
            occurred_at: None,
            connector: None,
        };
        if let Err(error) = self.store.write(write).await {
            // The lease runs out and the notification is delivered again.
            tracing::error!(%error, delivery = %delivery.delivery_id, "recording a delivery attempt failed");
        }
    }

    /// Renders the notification from the ledger: the owing event and the
    /// case as it stood right after it.
    async fn notification(&self, delivery: &ClaimedDelivery) -> Result<Notification, String> {
        let case_id: custody_core::CaseId = delivery
            .case_id
            .parse()
            .map_err(|error| format!("the outbox names no case: {error}"))?;
        let (_, events) = self
            .store
            .case(&case_id)
            .await
            .map_err(|error| format!("cannot read case {case_id}: {error}"))?;
        let position = events
            .iter()
            .position(|event| event.event_id.as_str() == delivery.event_id)
            .ok_or_else(|| {
                format!(
                    "case {case_id} holds no event {} that owes {}",
                    delivery.event_id, delivery.delivery_id
                )
            })?;
        let event = &events[position];
        let owed = event
            .notify
            .iter()
            .find(|owed| owed.delivery_id == delivery.delivery_id)
            .ok_or_else(|| {
                format!(
                    "event {} does not owe {}",
                    delivery.event_id, delivery.delivery_id
                )
            })?;
        let after = custody_core::CaseView::replay(&events[..=position])
            .ok_or_else(|| format!("case {case_id} does not start with a request"))?;
        let mut notification: Notification =
            serde_json::from_value(custody_core::outbox::payload(owed, event, &after))
                .map_err(|error| format!("cannot render the notification: {error}"))?;
        notification.case_url = self
            .config
            .case_url
            .as_ref()
            .map(|template| template.replace("{case}", &notification.case_id));
        Ok(notification)
    }

    /// The update a connector writes back for `delivery`, rendered from the
    /// ledger like a notification.
    async fn update(&self, delivery: &ClaimedDelivery) -> Result<custody_connect::Update, String> {
        let notification = self.notification(delivery).await?;
        let case_id: custody_core::CaseId = delivery
            .case_id
            .parse()
            .map_err(|error| format!("the outbox names no case: {error}"))?;
        let (now, events) = self
            .store
            .case(&case_id)
            .await
            .map_err(|error| format!("cannot read case {case_id}: {error}"))?;
        let position = events
            .iter()
            .position(|event| event.event_id.as_str() == delivery.event_id)
            .ok_or_else(|| format!("case {case_id} holds no event {}", delivery.event_id))?;
        let event = &events[position];
        let after = custody_core::CaseView::replay(&events[..=position])
            .ok_or_else(|| format!("case {case_id} does not start with a request"))?;
        let recipient = delivery.recipient.clone().ok_or_else(|| {
            format!(
                "write-back {} names no outside record to write to",
                delivery.delivery_id
            )
        })?;
        // The first write-back to this record: no earlier event of the case
        // owed one to it.
        let first = !events[..position].iter().any(|earlier| {
            earlier.notify.iter().any(|owed| {
                owed.channel == delivery.channel && owed.recipient.as_deref() == Some(&recipient)
            })
        });
        Ok(custody_connect::Update {
            case_id,
            case_url: notification.case_url.clone(),
            recipient,
            event: event.body.kind_name().to_string(),
            // A ticket gets the state each event left (a comment per
            // change, in order); a message that is edited in place gets
            // the case as it is now, so an older update delivered late
            // never shows a stale state.
            state: if now
                .ticket
                .as_ref()
                .is_some_and(|ticket| Some(&ticket.key) == delivery.recipient.as_ref())
            {
                after.state.to_string()
            } else {
                now.state.to_string()
            },
            actor: match &event.actor.on_behalf_of {
                Some(party) => format!("{} on behalf of {party}", event.actor.principal),
                None => event.actor.principal.to_string(),
            },
            summary: event.body.summary(),
            first,
        })
    }

    /// Exponential backoff with jitter (between half and the whole of the
    /// doubled wait), never below the receiver's `Retry-After`, never above
    /// `backoff_max_ms`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .config
            .backoff_initial_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(32))
            .min(self.config.backoff_max_ms);
        let mut random = [0u8; 8];
        let fraction = match getrandom::fill(&mut random) {
            Ok(()) => (u64::from_le_bytes(random) % 1000) as f64 / 1000.0,
            Err(_) => 0.5,
        };
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "between 0 and `doubled`, and a float cast saturates anyway"
        )]
        let jittered = (doubled as f64 * (0.5 + fraction / 2.0)) as u64;
        let wait = Duration::from_millis(jittered.max(1));
        let max = Duration::from_millis(self.config.backoff_max_ms);
        retry_after.map_or(wait, |after| wait.max(after)).min(max)
    }
}
