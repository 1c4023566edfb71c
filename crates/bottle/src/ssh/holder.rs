//! The key holder: an ssh-agent that lives outside the bottle. The bottle's
//! ssh reaches it through the relay; the private keys stay here, in
//! memory, and only signatures go in.
//!
//! Everything the relay brings is the agent's word. A key signs only an SSH
//! login request, read whole as OpenSSH's own agent reads it: the service
//! `ssh-connection`, the method `publickey` (or its host-bound form), the
//! held key itself, the declared `User` where one is set, and nothing
//! after. Anything else (a git commit's SSHSIG, a challenge of the agent's
//! making) is refused, pinned or not.
//!
//! A key whose hosts all pin their host key (`KnownHostKey`) signs only for
//! a session that ssh has bound, with OpenSSH's `session-bind@openssh.com`,
//! to one of those host keys: the binding's signature is checked against
//! the host key, and the login must be for that very session. So a key
//! given for one host cannot be used to log in anywhere else, whatever the
//! agent in the bottle asks. A key that serves a host without a pin signs
//! unbound logins too, as that host's user; the preflight says so.
//!
//! What it keeps is bounded: bindings per connection and in all, as
//! OpenSSH's agent bounds them, and its decisions as counts.

use std::collections::{BTreeMap, HashMap};

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
const SSH_CONNECTION: &[u8] = b"ssh-connection";
const PUBLICKEY: &[u8] = b"publickey";
const PUBLICKEY_HOSTBOUND: &[u8] = b"publickey-hostbound-v00@openssh.com";
/// Sessions one connection may bind, as OpenSSH's agent allows.
const BINDINGS_PER_CONNECTION: usize = 16;
/// Bindings held in all, over every open connection.
const BINDINGS_IN_ALL: usize = 1024;
/// The longest session id a binding may name (OpenSSH's agent allows 128
/// bytes), and the largest host key it may carry: a binding's size is
/// bounded as its number is.
const SESSION_ID_MAX: usize = 128;
const HOST_KEY_MAX: usize = 4096;
/// SIGN_REQUEST flags: which hash an RSA signature is to use.
const RSA_SHA2_256: u32 = 2;
const RSA_SHA2_512: u32 = 4;

/// One key and the hosts it may log in to.
#[derive(Clone)]
pub struct HeldKey {
    pub key: PrivateKey,
    /// The declared hosts it serves (their `Host` names), for the log.
    pub hosts: Vec<String>,
    /// What each of those hosts grants it.
    pub grants: Vec<Grant>,
}

/// One declared host's grant to a key: a login there, as its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The host's pinned key; `None` where the host has no pin, which
    /// cannot be told from any other host.
    pub pin: Option<KeyData>,
    /// The declared `User`; `None` lets ssh choose.
    pub user: Option<String>,
}

impl HeldKey {
    /// Whether one of its hosts has no pin: it then signs unbound logins.
    pub fn unpinned(&self) -> bool {
        self.grants.iter().any(|g| g.pin.is_none())
    }
}

impl std::fmt::Debug for HeldKey {
    /// The hosts only: a key is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldKey")
            .field("hosts", &self.hosts)
            .field("unpinned", &self.unpinned())
            .finish_non_exhaustive()
    }
}

/// A decision the holder made, for the session's summary and log.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SignDecision {
    /// The hosts the key serves, joined.
    pub key_for: String,
    pub signed: bool,
    pub reason: &'static str,
}

/// The holder's state: its keys, per relay connection the sessions ssh
/// bound it to, and how often it decided what.
#[derive(Debug, Default)]
pub struct Holder {
    keys: Vec<HeldKey>,
    bindings: HashMap<u32, Vec<Binding>>,
    /// Each distinct decision and how many times it was made: bounded by
    /// the keys and the reasons, however many requests come.
    tally: BTreeMap<SignDecision, u64>,
    /// The decision the last request brought, until it is taken.
    latest: Option<SignDecision>,
    /// Session bindings refused because the holder held its most.
    bindings_past_bound: u64,
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

    /// Every distinct decision so far, with how many times it was made.
    pub fn tally(&self) -> &BTreeMap<SignDecision, u64> {
        &self.tally
    }

    /// How many session bindings were refused because the holder held its
    /// most.
    pub fn bindings_past_bound(&self) -> u64 {
        self.bindings_past_bound
    }

    /// The decision the last request brought, if it brought one and it
    /// was not taken yet.
    pub fn take_latest(&mut self) -> Option<SignDecision> {
        self.latest.take()
    }

    fn decided(&mut self, decision: SignDecision) {
        *self.tally.entry(decision.clone()).or_default() += 1;
        self.latest = Some(decision);
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
        // Full before anything is verified: a flood costs no signatures.
        let held: usize = self.bindings.values().map(Vec::len).sum();
        let on_connection = self.bindings.get(&connection).map_or(0, Vec::len);
        if on_connection >= BINDINGS_PER_CONNECTION || held >= BINDINGS_IN_ALL {
            self.bindings_past_bound += 1;
            return vec![FAILURE];
        }
        let bound = (|| {
            let host_key =
                PublicKey::from_bytes(wire.string().filter(|k| k.len() <= HOST_KEY_MAX)?).ok()?;
            let session_id = wire
                .string()
                .filter(|s| s.len() <= SESSION_ID_MAX)?
                .to_vec();
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
            .may_sign(connection, held, data, flags)
            .and_then(|how| rsa_hash_allowed(held, flags).map(|()| how));
        let decision = SignDecision {
            key_for: held.hosts.join(","),
            signed: verdict.is_ok(),
            reason: verdict.unwrap_or_else(|why| why),
        };
        let key = held.key.clone();
        self.decided(decision);
        verdict.ok()?;
        let signature = sign(&key, data, flags)?;
        let mut out = vec![SIGN_RESPONSE];
        put_string(&mut out, &signature_blob(&signature)?);
        Some(out)
    }

    /// Whether `held` may sign `data` on `connection`: how, or why not.
    fn may_sign(
        &self,
        connection: u32,
        held: &HeldKey,
        data: &[u8],
        flags: u32,
    ) -> Result<&'static str, &'static str> {
        let login = Login::read(data, held, flags).ok_or("not a login request with this key")?;
        let bindings = self
            .bindings
            .get(&connection)
            .map_or(&[][..], Vec::as_slice);
        // The hosts this login may be for: those pinned to the key that
        // bound the session, and any without a pin, which cannot be told
        // from another.
        let (grants, how): (Vec<&Grant>, _) = if bindings.is_empty() {
            let unpinned = held.grants.iter().filter(|g| g.pin.is_none()).collect();
            (unpinned, "an unbound login for a host without a pin")
        } else {
            let binding = bindings
                .iter()
                .find(|b| b.session_id == login.session)
                .ok_or("a login for another session than the one bound")?;
            if login
                .host_key
                .is_some_and(|named| Some(named) != public_blob_of(&binding.host_key).as_deref())
            {
                return Err("a login naming another host key than the one bound");
            }
            let matching = held
                .grants
                .iter()
                .filter(|g| g.pin.as_ref().is_none_or(|pin| *pin == binding.host_key))
                .collect();
            (matching, "bound to its host")
        };
        if grants.is_empty() {
            return Err(if bindings.is_empty() {
                "no session binding for a pinned host"
            } else {
                "a session bound to another host"
            });
        }
        let as_declared = grants.iter().any(|g| {
            g.user
                .as_deref()
                .is_none_or(|user| user.as_bytes() == login.user)
        });
        if as_declared {
            Ok(how)
        } else {
            Err("a login as another user than the one declared")
        }
    }
}

/// An SSH userauth request, as a client's agent is asked to sign it
/// (RFC 4252 section 7, and OpenSSH's host-bound form), read whole.
struct Login<'a> {
    session: &'a [u8],
    user: &'a [u8],
    /// The host key the host-bound form names.
    host_key: Option<&'a [u8]>,
}

impl<'a> Login<'a> {
    /// `data` as a login with `held`'s key, signed as `flags` ask, or
    /// `None` for anything else.
    fn read(data: &'a [u8], held: &HeldKey, flags: u32) -> Option<Self> {
        let mut wire = Wire(data);
        let session = wire.string().filter(|s| !s.is_empty())?;
        if wire.byte()? != USERAUTH_REQUEST {
            return None;
        }
        let user = wire.string()?;
        let service = wire.string()?;
        let method = wire.string()?;
        let signature_follows = wire.byte()?;
        let algorithm = wire.string()?;
        let key = wire.string()?;
        let host_key = match method {
            PUBLICKEY => None,
            PUBLICKEY_HOSTBOUND => Some(wire.string()?),
            _ => return None,
        };
        let public = held.key.public_key();
        let fits = service == SSH_CONNECTION
            && signature_follows == 1
            && key == public_blob(public).as_slice()
            && algorithm_fits(algorithm, public, flags)
            && wire.0.is_empty();
        fits.then_some(Self {
            session,
            user,
            host_key,
        })
    }
}

/// Whether a login's signature algorithm is one of `key`'s kind, and for
/// RSA the very hash the sign request's `flags` ask for (never SHA-1).
fn algorithm_fits(algorithm: &[u8], key: &PublicKey, flags: u32) -> bool {
    if matches!(key.algorithm(), ssh_key::Algorithm::Rsa { .. }) {
        return match algorithm {
            b"rsa-sha2-256" => flags & (RSA_SHA2_256 | RSA_SHA2_512) == RSA_SHA2_256,
            b"rsa-sha2-512" => flags & (RSA_SHA2_256 | RSA_SHA2_512) == RSA_SHA2_512,
            _ => false,
        };
    }
    std::str::from_utf8(algorithm)
        .ok()
        .and_then(|a| ssh_key::Algorithm::new(a).ok())
        .is_some_and(|named| named == key.algorithm())
}

fn public_blob_of(key: &KeyData) -> Option<Vec<u8>> {
    let mut blob = Vec::new();
    key.encode(&mut blob).ok()?;
    Some(blob)
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

    /// Key `seed` for `host`, pinned to each of `pins` (as user `git`), or
    /// for a host without a pin.
    fn held(seed: u8, host: &str, pins: &[&PrivateKey], unpinned: bool) -> HeldKey {
        let mut grants: Vec<Grant> = pins
            .iter()
            .map(|p| Grant {
                pin: Some(p.public_key().key_data().clone()),
                user: Some("git".to_owned()),
            })
            .collect();
        if unpinned {
            grants.push(Grant {
                pin: None,
                user: Some("git".to_owned()),
            });
        }
        HeldKey {
            key: key(seed),
            hosts: vec![host.to_owned()],
            grants,
        }
    }

    /// The reasons of every refusal, in the tally's order.
    fn refusals(holder: &Holder) -> Vec<(String, &'static str, u64)> {
        holder
            .tally()
            .iter()
            .filter(|(d, _)| !d.signed)
            .map(|(d, n)| (d.key_for.clone(), d.reason, *n))
            .collect()
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
        let algorithm = match flags {
            RSA_SHA2_256 => "rsa-sha2-256".to_owned(),
            RSA_SHA2_512 => "rsa-sha2-512".to_owned(),
            _ => user_key.algorithm().as_str().to_owned(),
        };
        let login = LoginParts {
            algorithm,
            ..LoginParts::new(user_key, session)
        };
        sign_data(user_key, &login.encode(), flags)
    }

    fn sign_data(user_key: &PrivateKey, data: &[u8], flags: u32) -> Vec<u8> {
        let mut out = vec![SIGN_REQUEST];
        put_string(&mut out, &public_blob(user_key.public_key()));
        put_string(&mut out, data);
        put_u32(&mut out, flags as usize);
        out
    }

    /// The fields of a userauth request, to be varied one at a time.
    struct LoginParts<'a> {
        session: &'a [u8],
        kind: u8,
        user: &'a str,
        service: &'a str,
        method: &'a str,
        signature_follows: u8,
        algorithm: String,
        key: Vec<u8>,
        host_key: Option<Vec<u8>>,
        trailing: &'a [u8],
    }

    impl<'a> LoginParts<'a> {
        fn new(user_key: &'a PrivateKey, session: &'a [u8]) -> Self {
            Self {
                session,
                kind: USERAUTH_REQUEST,
                user: "git",
                service: "ssh-connection",
                method: "publickey",
                signature_follows: 1,
                algorithm: user_key.algorithm().as_str().to_owned(),
                key: public_blob(user_key.public_key()),
                host_key: None,
                trailing: b"",
            }
        }

        fn encode(&self) -> Vec<u8> {
            let mut data = Vec::new();
            put_string(&mut data, self.session);
            data.push(self.kind);
            put_string(&mut data, self.user.as_bytes());
            put_string(&mut data, self.service.as_bytes());
            put_string(&mut data, self.method.as_bytes());
            data.push(self.signature_follows);
            put_string(&mut data, self.algorithm.as_bytes());
            put_string(&mut data, &self.key);
            if let Some(host_key) = &self.host_key {
                put_string(&mut data, host_key);
            }
            data.extend_from_slice(self.trailing);
            data
        }
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
            grants: vec![Grant {
                pin: None,
                user: None,
            }],
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
        // SHA-1 (`ssh-rsa`, no flag), and a hash other than the login names.
        let sha1 = sign_data(&user, &LoginParts::new(&user, b"s1").encode(), 0);
        let mismatched = LoginParts {
            algorithm: "rsa-sha2-512".to_owned(),
            ..LoginParts::new(&user, b"s1")
        };
        let mismatched = sign_data(&user, &mismatched.encode(), RSA_SHA2_256);
        for asked in [sha1, mismatched] {
            assert_eq!(holder.answer(1, &asked), [FAILURE]);
            let last = holder.take_latest().unwrap();
            assert_eq!(last.reason, "not a login request with this key");
        }
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
        assert_eq!(
            refusals(&holder),
            [
                ("a".to_owned(), "a session bound to another host", 1),
                ("a".to_owned(), "no session binding for a pinned host", 1),
                (
                    "b".to_owned(),
                    "a login for another session than the one bound",
                    1
                ),
                ("b".to_owned(), "no session binding for a pinned host", 1),
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

    #[test]
    fn only_a_whole_login_with_the_held_key_as_the_declared_user_is_signed() {
        let host = key(10);
        let user_key = key(1);
        let mut holder = Holder::new(vec![held(1, "a", &[&host], false)]);
        assert_eq!(holder.answer(1, &bind(&host, b"s1")), [SUCCESS]);
        let good = LoginParts::new(&user_key, b"s1");
        assert_eq!(
            holder.answer(1, &sign_data(&user_key, &good.encode(), 0))[0],
            SIGN_RESPONSE
        );
        // The host-bound form, naming the bound host's key.
        let hostbound = LoginParts {
            method: "publickey-hostbound-v00@openssh.com",
            host_key: Some(public_blob(host.public_key())),
            ..LoginParts::new(&user_key, b"s1")
        };
        assert_eq!(
            holder.answer(1, &sign_data(&user_key, &hostbound.encode(), 0))[0],
            SIGN_RESPONSE
        );
        let other_key = key(2);
        let variants = [
            (
                "another user",
                LoginParts {
                    user: "root",
                    ..LoginParts::new(&user_key, b"s1")
                },
            ),
            (
                "another service",
                LoginParts {
                    service: "ssh-userauth",
                    ..LoginParts::new(&user_key, b"s1")
                },
            ),
            (
                "another method",
                LoginParts {
                    method: "hostbased",
                    ..LoginParts::new(&user_key, b"s1")
                },
            ),
            (
                "no signature",
                LoginParts {
                    signature_follows: 0,
                    ..LoginParts::new(&user_key, b"s1")
                },
            ),
            (
                "another key's blob",
                LoginParts {
                    key: public_blob(other_key.public_key()),
                    ..LoginParts::new(&user_key, b"s1")
                },
            ),
            (
                "another algorithm",
                LoginParts {
                    algorithm: "ecdsa-sha2-nistp256".to_owned(),
                    ..LoginParts::new(&user_key, b"s1")
                },
            ),
            (
                "bytes after it",
                LoginParts {
                    trailing: b"\0",
                    ..LoginParts::new(&user_key, b"s1")
                },
            ),
            (
                "another message",
                LoginParts {
                    kind: 51,
                    ..LoginParts::new(&user_key, b"s1")
                },
            ),
            (
                "another host key",
                LoginParts {
                    method: "publickey-hostbound-v00@openssh.com",
                    host_key: Some(public_blob(key(11).public_key())),
                    ..LoginParts::new(&user_key, b"s1")
                },
            ),
            (
                "no host key",
                LoginParts {
                    method: "publickey-hostbound-v00@openssh.com",
                    ..LoginParts::new(&user_key, b"s1")
                },
            ),
        ];
        for (what, login) in variants {
            let asked = sign_data(&user_key, &login.encode(), 0);
            assert_eq!(holder.answer(1, &asked), [FAILURE], "{what}");
        }
        let reasons: Vec<&str> = refusals(&holder).iter().map(|r| r.1).collect();
        assert!(reasons.contains(&"a login as another user than the one declared"));
        assert!(reasons.contains(&"not a login request with this key"));
        assert!(reasons.contains(&"a login naming another host key than the one bound"));
    }

    #[test]
    fn a_signature_over_anything_but_a_login_is_refused_pinned_or_not() {
        let host = key(10);
        for pinned in [true, false] {
            let pins: &[&PrivateKey] = if pinned { &[&host] } else { &[] };
            let mut holder = Holder::new(vec![held(1, "a", pins, !pinned)]);
            if pinned {
                assert_eq!(holder.answer(1, &bind(&host, b"s1")), [SUCCESS]);
            }
            // What `ssh-keygen -Y sign` asks: an SSHSIG blob (a git commit's).
            let mut sshsig = b"SSHSIG".to_vec();
            put_string(&mut sshsig, b"git");
            put_string(&mut sshsig, b"");
            put_string(&mut sshsig, b"sha512");
            put_string(&mut sshsig, &[7; 64]);
            for data in [sshsig, b"any challenge".to_vec(), Vec::new()] {
                assert_eq!(
                    holder.answer(1, &sign_data(&key(1), &data, 0)),
                    [FAILURE],
                    "pinned: {pinned}"
                );
            }
        }
    }

    #[test]
    fn an_unpinned_host_signs_unbound_only_as_its_own_user() {
        let host = key(10);
        let user_key = key(1);
        let mut shared = held(1, "a,b", &[&host], false);
        shared.grants.push(Grant {
            pin: None,
            user: Some("deploy".to_owned()),
        });
        let mut holder = Holder::new(vec![shared]);
        let as_user = |user| {
            sign_data(
                &user_key,
                &LoginParts {
                    user,
                    ..LoginParts::new(&user_key, b"s1")
                }
                .encode(),
                0,
            )
        };
        // Unbound: only the unpinned host's user.
        assert_eq!(holder.answer(1, &as_user("deploy"))[0], SIGN_RESPONSE);
        assert_eq!(holder.answer(1, &as_user("git")), [FAILURE]);
        // Bound to the pinned host: its user, or the unpinned one's.
        assert_eq!(holder.answer(2, &bind(&host, b"s1")), [SUCCESS]);
        assert_eq!(holder.answer(2, &as_user("git"))[0], SIGN_RESPONSE);
        assert_eq!(holder.answer(2, &as_user("root")), [FAILURE]);
    }

    #[test]
    fn a_binding_too_large_to_be_a_real_one_is_refused() {
        let host = key(10);
        let mut holder = Holder::new(vec![held(1, "a", &[&host], false)]);
        assert_eq!(
            holder.answer(1, &bind(&host, &[7; SESSION_ID_MAX + 1])),
            [FAILURE]
        );
        assert_eq!(
            holder.answer(1, &bind(&host, &[7; SESSION_ID_MAX])),
            [SUCCESS]
        );
    }

    #[test]
    fn what_the_holder_keeps_is_bounded_however_much_is_asked() {
        let host = key(10);
        let mut holder = Holder::new(vec![held(1, "a", &[&host], false)]);
        let binds: Vec<Vec<u8>> = (1..=20u8).map(|s| bind(&host, &[s])).collect();
        for connection in 0..70 {
            for bind in &binds {
                holder.answer(connection, bind);
            }
        }
        let held: usize = holder.bindings.values().map(Vec::len).sum();
        assert_eq!(held, BINDINGS_IN_ALL);
        assert_eq!(holder.bindings_past_bound(), 70 * 20 - 1024);
        assert!(
            holder
                .bindings
                .values()
                .all(|b| b.len() <= BINDINGS_PER_CONNECTION)
        );
        for _ in 0..10_000 {
            holder.answer(999, &sign_request(&key(1), b"s9"));
        }
        assert_eq!(holder.tally().len(), 1);
        assert_eq!(refusals(&holder)[0].2, 10_000);
    }
}
