//! The key holder: an ssh-agent that lives outside the bottle. The bottle's
//! ssh reaches it through the relay; the private keys stay here, in
//! memory, and only signatures go in.
//!
//! A key whose hosts all pin their host key (`KnownHostKey`) signs only for
//! a session that ssh has bound, with OpenSSH's `session-bind@openssh.com`,
//! to one of those host keys: the binding's signature is checked against
//! the host key, and the data to sign must be a login request for that very
//! session. So a key given for one host cannot be used to log in anywhere
//! else, whatever the agent in the bottle asks. A key that serves a host
//! without a pin signs unbound requests too; the preflight says so.

use std::collections::HashMap;

use signature::{Signer, Verifier};
use ssh_encoding::Encode;
use ssh_key::public::KeyData;
use ssh_key::{PrivateKey, PublicKey, Signature};

const FAILURE: u8 = 5;
const SUCCESS: u8 = 6;
const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
const EXTENSION: u8 = 27;
const USERAUTH_REQUEST: u8 = 50;
const SESSION_BIND: &[u8] = b"session-bind@openssh.com";
/// SIGN_REQUEST flags: which hash an RSA signature is to use.
const RSA_SHA2_256: u32 = 2;
const RSA_SHA2_512: u32 = 4;

/// One key and the host keys it may sign for.
#[derive(Clone)]
pub struct HeldKey {
    pub key: PrivateKey,
    /// The declared hosts it serves (their `Host` names), for the log.
    pub hosts: Vec<String>,
    /// The pinned host keys of those hosts.
    pub pins: Vec<KeyData>,
    /// Whether one of its hosts has no pin: it then signs unbound too.
    pub unpinned: bool,
}

impl std::fmt::Debug for HeldKey {
    /// The hosts only: a key is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldKey")
            .field("hosts", &self.hosts)
            .field("unpinned", &self.unpinned)
            .finish_non_exhaustive()
    }
}

/// A decision the holder made, for the session's summary and log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignDecision {
    /// The hosts the key serves, joined.
    pub key_for: String,
    pub signed: bool,
    pub reason: &'static str,
}

/// The holder's state: its keys, and per relay connection the sessions
/// ssh bound it to.
#[derive(Debug, Default)]
pub struct Holder {
    keys: Vec<HeldKey>,
    bindings: HashMap<u32, Vec<Binding>>,
    decisions: Vec<SignDecision>,
}

#[derive(Debug, Clone)]
struct Binding {
    host_key: KeyData,
    session_id: Vec<u8>,
}

impl Holder {
    pub fn new(keys: Vec<HeldKey>) -> Self {
        Self {
            keys,
            ..Self::default()
        }
    }

    /// Every sign request decided so far.
    pub fn decisions(&self) -> &[SignDecision] {
        &self.decisions
    }

    /// Forgets what a closed connection was bound to.
    pub fn closed(&mut self, connection: u32) {
        self.bindings.remove(&connection);
    }

    /// The answer to one agent request on `connection`.
    pub fn answer(&mut self, connection: u32, request: &[u8]) -> Vec<u8> {
        let mut wire = Wire(request);
        match wire.byte() {
            Some(REQUEST_IDENTITIES) => self.identities(),
            Some(SIGN_REQUEST) => self.sign(connection, wire).unwrap_or_else(|| vec![FAILURE]),
            Some(EXTENSION) => self.extension(connection, wire),
            // Adding, removing or locking keys is not the bottle's to do.
            _ => vec![FAILURE],
        }
    }

    fn identities(&self) -> Vec<u8> {
        let mut out = vec![IDENTITIES_ANSWER];
        put_u32(&mut out, self.keys.len());
        for held in &self.keys {
            let blob = public_blob(held.key.public_key());
            put_string(&mut out, &blob);
            put_string(&mut out, held.hosts.join(",").as_bytes());
        }
        out
    }

    fn extension(&mut self, connection: u32, mut wire: Wire<'_>) -> Vec<u8> {
        if wire.string() != Some(SESSION_BIND) {
            return vec![FAILURE];
        }
        let bound = (|| {
            let host_key = PublicKey::from_bytes(wire.string()?).ok()?;
            let session_id = wire.string()?.to_vec();
            let signature = Signature::try_from(wire.string()?).ok()?;
            let forwarding = wire.byte()? != 0;
            // A binding whose host key did not sign this session is a lie;
            // the agent is not forwarded beyond the bottle.
            if forwarding || Verifier::verify(host_key.key_data(), &session_id, &signature).is_err()
            {
                return None;
            }
            Some(Binding {
                host_key: host_key.key_data().clone(),
                session_id,
            })
        })();
        match bound {
            Some(binding) => {
                self.bindings.entry(connection).or_default().push(binding);
                vec![SUCCESS]
            }
            None => vec![FAILURE],
        }
    }

    fn sign(&mut self, connection: u32, mut wire: Wire<'_>) -> Option<Vec<u8>> {
        let blob = wire.string()?;
        let data = wire.string()?;
        let flags = wire.u32().unwrap_or(0);
        let index = self
            .keys
            .iter()
            .position(|held| public_blob(held.key.public_key()) == blob)?;
        let held = &self.keys[index];
        let verdict = self
            .may_sign(connection, held, data)
            .and_then(|()| rsa_hash_allowed(held, flags));
        self.decisions.push(SignDecision {
            key_for: held.hosts.join(","),
            signed: verdict.is_ok(),
            reason: verdict.err().unwrap_or("bound to its host"),
        });
        verdict.ok()?;
        let signature = sign(&held.key, data, flags)?;
        let mut out = vec![SIGN_RESPONSE];
        put_string(&mut out, &signature_blob(&signature)?);
        Some(out)
    }

    /// Whether `held` may sign `data` on `connection`, and why not.
    fn may_sign(&self, connection: u32, held: &HeldKey, data: &[u8]) -> Result<(), &'static str> {
        let session = login_session(data);
        let bindings = self
            .bindings
            .get(&connection)
            .map_or(&[][..], Vec::as_slice);
        if bindings.is_empty() {
            return if held.unpinned {
                Ok(())
            } else {
                Err("no session binding for a pinned host")
            };
        }
        let Some(session) = session else {
            return Err("not a login request");
        };
        let Some(binding) = bindings.iter().find(|b| b.session_id == session) else {
            return Err("a login for another session than the one bound");
        };
        // A key that also serves an unpinned host cannot tell that host's
        // key from another: it signs any bound login, as it would unbound.
        if held.pins.contains(&binding.host_key) || held.unpinned {
            Ok(())
        } else {
            Err("a session bound to another host")
        }
    }
}

/// An RSA key signs with SHA-2 only: the client says which, and one that
/// asks for neither asks for SHA-1, which is refused.
fn rsa_hash_allowed(held: &HeldKey, flags: u32) -> Result<(), &'static str> {
    let rsa = matches!(held.key.key_data(), ssh_key::private::KeypairData::Rsa(_));
    if rsa && flags & (RSA_SHA2_256 | RSA_SHA2_512) == 0 {
        Err("an RSA signature over SHA-1 was asked for")
    } else {
        Ok(())
    }
}

/// `key`'s signature over `data`; for RSA with the hash `flags` ask for.
fn sign(key: &PrivateKey, data: &[u8], flags: u32) -> Option<Signature> {
    let ssh_key::private::KeypairData::Rsa(keypair) = key.key_data() else {
        return key.try_sign(data).ok();
    };
    let rsa = rsa_private_key(keypair)?;
    // Blinded (randomised): the bottle asks for signatures at will, and an
    // unblinded RSA signer leaks timing (RUSTSEC-2023-0071).
    let mut rng = rsa::rand_core::OsRng;
    let (hash, signed) = if flags & RSA_SHA2_512 != 0 {
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(rsa);
        (
            ssh_key::HashAlg::Sha512,
            rsa::signature::RandomizedSigner::try_sign_with_rng(&signer, &mut rng, data).ok()?,
        )
    } else {
        let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa);
        (
            ssh_key::HashAlg::Sha256,
            rsa::signature::RandomizedSigner::try_sign_with_rng(&signer, &mut rng, data).ok()?,
        )
    };
    let algorithm = ssh_key::Algorithm::Rsa { hash: Some(hash) };
    Signature::new(
        algorithm,
        rsa::signature::SignatureEncoding::to_vec(&signed),
    )
    .ok()
}

/// The key as the `rsa` crate takes it. Made here from its parts: ssh-key's
/// own conversion passes `p` where `q` belongs, which `rsa` refuses.
fn rsa_private_key(keypair: &ssh_key::private::RsaKeypair) -> Option<rsa::RsaPrivateKey> {
    let big = |m: &ssh_key::Mpint| Some(rsa::BigUint::from_bytes_be(m.as_positive_bytes()?));
    rsa::RsaPrivateKey::from_components(
        big(&keypair.public.n)?,
        big(&keypair.public.e)?,
        big(&keypair.private.d)?,
        vec![big(&keypair.private.p)?, big(&keypair.private.q)?],
    )
    .ok()
}

/// The session a userauth request logs into, when `data` is one.
fn login_session(data: &[u8]) -> Option<Vec<u8>> {
    let mut wire = Wire(data);
    let session = wire.string()?.to_vec();
    (wire.byte()? == USERAUTH_REQUEST).then_some(session)
}

fn public_blob(key: &PublicKey) -> Vec<u8> {
    key.to_bytes().unwrap_or_default()
}

fn signature_blob(signature: &Signature) -> Option<Vec<u8>> {
    let mut blob = Vec::new();
    signature.encode(&mut blob).ok()?;
    Some(blob)
}

fn put_u32(out: &mut Vec<u8>, value: usize) {
    out.extend_from_slice(&u32::try_from(value).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Reads the SSH wire encoding: bytes, `uint32`s and length-prefixed
/// strings; `None` past the end.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }

    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_at_checked(4)?;
        self.0 = rest;
        Some(u32::from_be_bytes(head.try_into().ok()?))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let length = self.u32()? as usize;
        let (head, rest) = self.0.split_at_checked(length)?;
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use ssh_key::private::Ed25519Keypair;

    use super::*;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn held(seed: u8, host: &str, pins: &[&PrivateKey], unpinned: bool) -> HeldKey {
        HeldKey {
            key: key(seed),
            hosts: vec![host.to_owned()],
            pins: pins
                .iter()
                .map(|p| p.public_key().key_data().clone())
                .collect(),
            unpinned,
        }
    }

    fn bind(host: &PrivateKey, session: &[u8]) -> Vec<u8> {
        let signature: Signature = host.try_sign(session).unwrap();
        let mut out = vec![EXTENSION];
        put_string(&mut out, SESSION_BIND);
        put_string(&mut out, &public_blob(host.public_key()));
        put_string(&mut out, session);
        put_string(&mut out, &signature_blob(&signature).unwrap());
        out.push(0);
        out
    }

    fn sign_request(user_key: &PrivateKey, session: &[u8]) -> Vec<u8> {
        sign_request_with(user_key, session, 0)
    }

    fn sign_request_with(user_key: &PrivateKey, session: &[u8], flags: u32) -> Vec<u8> {
        let mut data = Vec::new();
        put_string(&mut data, session);
        data.push(USERAUTH_REQUEST);
        put_string(&mut data, b"git");
        let mut out = vec![SIGN_REQUEST];
        put_string(&mut out, &public_blob(user_key.public_key()));
        put_string(&mut out, &data);
        put_u32(&mut out, flags as usize);
        out
    }

    /// A fresh RSA key from ssh-keygen (fast, where generating one in a
    /// debug build is not).
    fn rsa_key() -> PrivateKey {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "", "-f"])
            .arg(&path)
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success());
        PrivateKey::read_openssh_file(&path).unwrap()
    }

    #[test]
    fn an_rsa_key_signs_with_the_sha2_hash_asked_for_and_never_sha1() {
        let user = rsa_key();
        let mut holder = Holder::new(vec![HeldKey {
            key: user.clone(),
            hosts: vec!["a".to_owned()],
            pins: Vec::new(),
            unpinned: true,
        }]);
        for (flags, hash) in [
            (RSA_SHA2_256, ssh_key::HashAlg::Sha256),
            (RSA_SHA2_512, ssh_key::HashAlg::Sha512),
        ] {
            let request = sign_request_with(&user, b"s1", flags);
            let signed = holder.answer(1, &request);
            assert_eq!(signed[0], SIGN_RESPONSE, "flags {flags}");
            let signature = Signature::try_from(Wire(&signed[1..]).string().unwrap()).unwrap();
            assert_eq!(
                signature.algorithm(),
                ssh_key::Algorithm::Rsa { hash: Some(hash) }
            );
            let mut asked = Wire(&request[1..]);
            asked.string();
            let asked = asked.string().unwrap();
            assert!(Verifier::verify(user.public_key().key_data(), asked, &signature).is_ok());
        }
        assert_eq!(holder.answer(1, &sign_request(&user, b"s1")), [FAILURE]);
        let last = holder.decisions().last().unwrap();
        assert_eq!(last.reason, "an RSA signature over SHA-1 was asked for");
    }

    #[test]
    fn the_identities_are_the_public_halves_of_the_held_keys() {
        let mut holder = Holder::new(vec![held(1, "a", &[], true), held(2, "b", &[], true)]);
        let answer = holder.answer(1, &[REQUEST_IDENTITIES]);
        let mut wire = Wire(&answer);
        assert_eq!(wire.byte(), Some(IDENTITIES_ANSWER));
        assert_eq!(wire.u32(), Some(2));
        for (seed, host) in [(1, "a"), (2, "b")] {
            assert_eq!(wire.string().unwrap(), public_blob(key(seed).public_key()));
            assert_eq!(wire.string().unwrap(), host.as_bytes());
        }
        assert!(wire.0.is_empty());
    }

    #[test]
    fn a_pinned_key_signs_only_for_a_session_bound_to_its_host() {
        let (host_a, host_b) = (key(10), key(11));
        let mut holder = Holder::new(vec![
            held(1, "a", &[&host_a], false),
            held(2, "b", &[&host_b], false),
        ]);
        let (ka, kb) = (key(1), key(2));
        // Unbound: refused for a pinned host.
        assert_eq!(holder.answer(1, &sign_request(&ka, b"s1")), [FAILURE]);
        // Bound to B: kA refused, kB signs.
        assert_eq!(holder.answer(1, &bind(&host_b, b"s1")), [SUCCESS]);
        assert_eq!(holder.answer(1, &sign_request(&ka, b"s1")), [FAILURE]);
        let signed = holder.answer(1, &sign_request(&kb, b"s1"));
        assert_eq!(signed[0], SIGN_RESPONSE);
        // The signature is kB's over exactly the data asked.
        let mut wire = Wire(&signed[1..]);
        let signature = Signature::try_from(wire.string().unwrap()).unwrap();
        let data = &sign_request(&kb, b"s1")[1..];
        let mut request = Wire(data);
        request.string();
        let asked = request.string().unwrap();
        assert!(Verifier::verify(kb.public_key().key_data(), asked, &signature).is_ok());
        // A login for another session than the bound one: refused.
        assert_eq!(holder.answer(1, &sign_request(&kb, b"s2")), [FAILURE]);
        // Bound on one connection is not bound on another.
        assert_eq!(holder.answer(2, &sign_request(&kb, b"s1")), [FAILURE]);
        let refused: Vec<_> = holder
            .decisions()
            .iter()
            .filter(|d| !d.signed)
            .map(|d| (d.key_for.as_str(), d.reason))
            .collect();
        assert_eq!(
            refused,
            [
                ("a", "no session binding for a pinned host"),
                ("a", "a session bound to another host"),
                ("b", "a login for another session than the one bound"),
                ("b", "no session binding for a pinned host"),
            ]
        );
    }

    #[test]
    fn a_binding_the_host_key_did_not_sign_is_refused() {
        let (host_a, host_b) = (key(10), key(11));
        let mut holder = Holder::new(vec![held(1, "a", &[&host_a], false)]);
        // B's session, claimed to be A's: the signature is B's, not A's.
        let mut forged = bind(&host_b, b"s1");
        let a_blob = public_blob(host_a.public_key());
        let b_blob = public_blob(host_b.public_key());
        let at = forged
            .windows(b_blob.len())
            .position(|w| w == b_blob)
            .unwrap();
        forged.splice(at..at + b_blob.len(), a_blob);
        assert_eq!(holder.answer(1, &forged), [FAILURE]);
        assert_eq!(holder.answer(1, &sign_request(&key(1), b"s1")), [FAILURE]);
        // Forwarding the agent beyond the bottle is refused.
        let mut forwarding = bind(&host_a, b"s1");
        *forwarding.last_mut().unwrap() = 1;
        assert_eq!(holder.answer(1, &forwarding), [FAILURE]);
    }

    #[test]
    fn an_unpinned_key_signs_unbound_and_nothing_else_is_done() {
        let mut holder = Holder::new(vec![held(1, "a", &[], true)]);
        assert_eq!(
            holder.answer(1, &sign_request(&key(1), b"s"))[0],
            SIGN_RESPONSE
        );
        // A key the holder does not hold, adding keys, garbage: failures.
        assert_eq!(holder.answer(1, &sign_request(&key(3), b"s")), [FAILURE]);
        assert_eq!(holder.answer(1, &[17]), [FAILURE]);
        assert_eq!(holder.answer(1, &[]), [FAILURE]);
        assert_eq!(holder.answer(1, &[SIGN_REQUEST, 0, 0, 0, 9]), [FAILURE]);
    }
}
