//! A supernode with a cluster secret answers only members: every route of
//! its agent API (`docs/API.md`) refuses a request without a signature,
//! and one signed with another secret, with `401`; a request signed with
//! the cluster secret gets its answer, and so does [`SupernodeClient`]
//! signing with it. (Requests go over TLS as a member: in plain HTTP, the
//! API answers nothing but 401; see `node_tls`.)

use reqwest::{Method, StatusCode, Url};
use shoal_agent::access::ClientAuth;
use shoal_agent::http_auth::Auth;
use shoal_agent::supernode_client::SupernodeClient;
use shoal_agent::upstream::AccessTarget;
use shoal_proto::{Digest, Reference, RepoName};
use shoal_tests::cluster::{REPO, TAG, UPSTREAM_NAME};
use shoal_tests::swarm::{SECRET, https_url, member_auth, member_client, secured_supernode};

/// One request to the supernode's API.
struct Call {
    method: Method,
    path: &'static str,
    query: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Call {
    /// Sends the call to `base`, signed with `auth`.
    async fn send(&self, base: &str, auth: &Auth) -> reqwest::Response {
        let mut url = Url::parse(base).unwrap().join(self.path).unwrap();
        if !self.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&self.query);
        }
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let req = member_client(SECRET)
            .request(self.method.clone(), url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(self.body.clone());
        auth.sign(req, self.method.as_str(), &target, &self.body)
            .send()
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn every_supernode_route_requires_the_cluster_signature() {
    let tmp = shoal_tests::tmp::dir("supernode-auth-");
    let (_registry, image, supernode, _secret) = secured_supernode(tmp.path()).await;
    let base = https_url(&supernode);
    let layer_blob = &image.platform("amd64").layers[0];
    let layer = layer_blob.digest.clone();
    let at = |key, value: &str| {
        vec![("upstream", UPSTREAM_NAME), ("repo", REPO), (key, value)]
            .into_iter()
            .map(|(k, v)| (k, v.to_owned()))
            .collect::<Vec<_>>()
    };
    let get = |path, query: Vec<(&'static str, String)>| Call {
        method: Method::GET,
        path,
        query,
        body: Vec::new(),
    };
    let mut piece_map = at("digest", &layer);
    piece_map.push(("known", "0".into()));
    let calls = [
        get("/api/v1/manifests", at("reference", TAG)),
        Call {
            method: Method::HEAD,
            ..get("/api/v1/manifests", at("reference", TAG))
        },
        get("/api/v1/blobs", at("digest", &layer)),
        get("/api/v1/piecemap", piece_map),
        get("/api/v1/access", at("reference", TAG)),
        Call {
            method: Method::POST,
            path: "/api/v1/seed",
            query: Vec::new(),
            body: serde_json::to_vec(&serde_json::json!({
                "upstream": UPSTREAM_NAME, "repo": REPO, "digest": layer,
            }))
            .unwrap(),
        },
    ];
    let stranger = member_auth("another secret, also long enough\n");
    let member = member_auth(SECRET);
    for call in &calls {
        let what = format!("{} {}", call.method, call.path);
        for (who, key) in [("unsigned", &Auth::Insecure), ("stranger", &stranger)] {
            let resp = call.send(&base, key).await;
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}, {who}");
        }
        let resp = call.send(&base, &member).await;
        assert!(resp.status().is_success(), "{what}, member: {resp:?}");
    }

    // The agent's client: refused without the secret, answered with it.
    let repo = RepoName::parse(REPO).unwrap();
    let tag = Reference::parse(TAG).unwrap();
    let digest = Digest::parse(&layer).unwrap();
    let unsigned = SupernodeClient::new(&supernode.http_url()).unwrap();
    let err = unsigned
        .manifest(UPSTREAM_NAME, &repo, &tag, None)
        .await
        .expect_err("an unsigned client must be refused");
    assert_eq!(err.status, StatusCode::UNAUTHORIZED, "{err:?}");
    let client = unsigned.with_auth(member);
    client
        .manifest(UPSTREAM_NAME, &repo, &tag, None)
        .await
        .expect("signed manifest");
    client
        .access(
            UPSTREAM_NAME,
            &repo,
            &AccessTarget::Blob(digest),
            &ClientAuth::default(),
        )
        .await
        .expect("signed access check");
    let view = client
        .piece_map(UPSTREAM_NAME, &repo, &digest, 0)
        .await
        .expect("signed piece map");
    assert_eq!(view.digest, digest);
    let body = client
        .blob(UPSTREAM_NAME, &repo, &digest, 1)
        .await
        .expect("signed blob with a range");
    assert_eq!(body.total_size, layer_blob.bytes.len() as u64);
}
