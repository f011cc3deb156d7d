//! The operator dashboard's logins: the admin cookie that unlocks it, one-time tickets
//! (`dashboard.login_url`: valid for [`TICKET_TTL`], usable once) and the sessions a login opens
//! (valid for [`SESSION_TTL`]). All in memory: a restart logs everyone out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a one-time login ticket can be used.
pub const TICKET_TTL: Duration = Duration::from_secs(60);
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3_600);

/// The dashboard's address and cookie once it listens, its open tickets and sessions.
#[derive(Default)]
pub struct Logins {
    on: OnceLock<(SocketAddr, String)>,
    open: Mutex<Open>,
}

/// Tickets and sessions by token, with when each expires.
#[derive(Default)]
struct Open {
    tickets: HashMap<String, Instant>,
    sessions: HashMap<String, Instant>,
}

impl Open {
    fn prune(&mut self, now: Instant) {
        self.tickets.retain(|_, until| *until > now);
        self.sessions.retain(|_, until| *until > now);
    }

    fn session(&mut self, now: Instant) -> String {
        self.prune(now);
        let token = crate::secret::random_hex(32);
        self.sessions.insert(token.clone(), now + SESSION_TTL);
        token
    }
}

impl Logins {
    /// The dashboard listens on `addr` and is unlocked with `cookie` (once; later calls change
    /// nothing).
    pub fn enable(&self, addr: SocketAddr, cookie: String) {
        let _ = self.on.set((addr, cookie));
    }

    /// Where the dashboard listens; `None` when it is off.
    pub fn address(&self) -> Option<SocketAddr> {
        self.on.get().map(|(addr, _)| *addr)
    }

    fn open(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new session when `presented` is the admin cookie (compared in constant time).
    pub fn with_cookie(&self, presented: &str, now: Instant) -> Option<String> {
        let (_, cookie) = self.on.get()?;
        crate::secret::equal(presented.trim().as_bytes(), cookie.as_bytes()).then(|| self.open().session(now))
    }

    /// A new one-time ticket; `None` when the dashboard is off.
    pub fn ticket(&self, now: Instant) -> Option<String> {
        self.on.get()?;
        let mut open = self.open();
        open.prune(now);
        let ticket = crate::secret::random_hex(32);
        open.tickets.insert(ticket.clone(), now + TICKET_TTL);
        Some(ticket)
    }

    /// A new session for a ticket still valid, which is used up.
    pub fn redeem(&self, ticket: &str, now: Instant) -> Option<String> {
        let mut open = self.open();
        let until = open.tickets.remove(ticket)?;
        (until > now).then(|| open.session(now))
    }

    /// Whether `session` is open at `now`.
    pub fn valid(&self, session: &str, now: Instant) -> bool {
        self.open().sessions.get(session).is_some_and(|until| *until > now)
    }

    /// Ends `session`.
    pub fn logout(&self, session: &str) {
        self.open().sessions.remove(session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_opens_while_the_dashboard_is_off() {
        let logins = Logins::default();
        let now = Instant::now();
        assert_eq!(logins.address(), None);
        assert!(logins.ticket(now).is_none());
        assert!(logins.with_cookie("", now).is_none());
    }

    #[test]
    fn the_cookie_opens_a_session_that_expires() {
        let logins = Logins::default();
        logins.enable(([127, 0, 0, 1], 9381).into(), "c00k1e".into());
        let now = Instant::now();
        assert!(logins.with_cookie("wrong", now).is_none());
        assert!(logins.with_cookie("c00k1", now).is_none());
        let session = logins.with_cookie("c00k1e\n", now).unwrap();
        assert_eq!(session.len(), 64);
        assert!(logins.valid(&session, now + SESSION_TTL - Duration::from_secs(1)));
        assert!(!logins.valid(&session, now + SESSION_TTL));
        assert!(!logins.valid("", now));
        let other = logins.with_cookie("c00k1e", now).unwrap();
        logins.logout(&other);
        assert!(!logins.valid(&other, now) && logins.valid(&session, now));
    }

    #[test]
    fn a_ticket_works_once_and_only_within_its_minute() {
        let logins = Logins::default();
        logins.enable(([127, 0, 0, 1], 9381).into(), "c".into());
        let now = Instant::now();
        let ticket = logins.ticket(now).unwrap();
        let session = logins.redeem(&ticket, now + Duration::from_secs(59)).unwrap();
        assert!(logins.valid(&session, now));
        assert!(logins.redeem(&ticket, now).is_none(), "used up");
        let late = logins.ticket(now).unwrap();
        assert!(logins.redeem(&late, now + TICKET_TTL).is_none(), "expired");
        assert!(logins.redeem(&late, now).is_none(), "an expired ticket is gone too");
        assert!(logins.redeem("nope", now).is_none());
    }
}
