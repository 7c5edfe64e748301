//! The Coordinator metadata endpoints, served from the metadata store.

use serde_json::{Value, json};

use crate::support::{TestServer, inline};

/// `wiki`: two DAY segments (2015-09-12 with 2 rows, 2015-09-13 with 1).
async fn server_with_wiki(dir: &std::path::Path) -> TestServer {
    let server = TestServer::spawn(dir, |_| {}).await;
    let rows = vec![
        ("2015-09-12T01:00:00Z".to_string(), "a".to_string(), 1),
        ("2015-09-12T02:00:00Z".to_string(), "b".to_string(), 2),
        ("2015-09-13T03:00:00Z".to_string(), "c".to_string(), 3),
    ];
    let sql = format!(
        "INSERT INTO wiki SELECT TIME_PARSE(ts) AS __time, page, n FROM {} PARTITIONED BY DAY",
        inline(&rows)
    );
    server.ingest(&sql).await;
    server
}

const DAY12: &str = "2015-09-12T00:00:00.000Z/2015-09-13T00:00:00.000Z";
const DAY13: &str = "2015-09-13T00:00:00.000Z/2015-09-14T00:00:00.000Z";

#[tokio::test]
async fn metadata_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_wiki(dir.path()).await;
    let base = "/druid/coordinator/v1/metadata";

    let (code, body) = server.get(&format!("{base}/datasources")).await;
    assert_eq!((code, body), (200, json!(["wiki"])));
    let (_, body) = server
        .get(&format!("{base}/datasources?includeUnused"))
        .await;
    assert_eq!(body, json!(["wiki"]));
    let (_, body) = server.get(&format!("{base}/datasources?full")).await;
    assert_eq!(body[0]["name"], "wiki");
    assert!(
        body[0]["properties"]["created"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert_eq!(body[0]["segments"].as_array().unwrap().len(), 2);

    let (code, one) = server.get(&format!("{base}/datasources/wiki")).await;
    assert_eq!(code, 200);
    assert_eq!(one["segments"].as_array().unwrap().len(), 2);
    let (code, _) = server.get(&format!("{base}/datasources/nope")).await;
    assert_eq!(code, 404);

    let (code, ids) = server
        .get(&format!("{base}/datasources/wiki/segments"))
        .await;
    assert_eq!(code, 200);
    let ids: Vec<String> = serde_json::from_value(ids).unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0].starts_with("wiki_2015-09-12T00:00:00.000Z_2015-09-13T00:00:00.000Z_"));
    let (_, full) = server
        .get(&format!("{base}/datasources/wiki/segments?full"))
        .await;
    let seg = &full[0];
    assert_eq!(seg["dataSource"], "wiki");
    assert_eq!(seg["interval"], DAY12);
    assert_eq!(seg["identifier"], json!(ids[0]));
    assert_eq!(seg["dimensions"], "page,n");
    assert_eq!(seg["binaryVersion"], 9);
    assert_eq!(seg["shardSpec"]["type"], "numbered");
    assert!(seg["size"].as_u64().unwrap() > 0);
    assert_eq!(seg["loadSpec"]["type"], "local");
    let (code, _) = server
        .get(&format!("{base}/datasources/nope/segments"))
        .await;
    assert_eq!(code, 404);

    // POST: the segments overlapping the given intervals.
    let (code, body) = server
        .post(
            &format!("{base}/datasources/wiki/segments"),
            json!(["2015-09-13T12:00:00.000Z/2015-09-20T00:00:00.000Z"]),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(body, json!([ids[1]]));
    let (code, body) = server
        .post(
            &format!("{base}/datasources/wiki/segments"),
            json!(["nope"]),
        )
        .await;
    assert_eq!(code, 400, "{body}");

    let (code, body) = server
        .get(&format!("{base}/datasources/wiki/segments/{}", ids[1]))
        .await;
    assert_eq!(code, 200);
    assert_eq!(body["interval"], DAY13);
    let (code, _) = server
        .get(&format!("{base}/datasources/wiki/segments/wiki_nope"))
        .await;
    assert_eq!(code, 404);

    let (_, all) = server
        .get(&format!("{base}/segments?includeOvershadowedStatus"))
        .await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["overshadowed"], false);
    let (_, none) = server
        .get(&format!("{base}/segments?datasources=other"))
        .await;
    assert_eq!(none, json!([]));
    let (_, some) = server
        .get(&format!("{base}/segments?datasources=wiki"))
        .await;
    assert!(some[0].get("overshadowed").is_none());
    server.stop().await;
}

#[tokio::test]
async fn served_intervals() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_with_wiki(dir.path()).await;
    let base = "/druid/coordinator/v1/datasources";

    let (code, body) = server.get(base).await;
    assert_eq!((code, body), (200, json!(["wiki"])));
    let (_, body) = server.get(&format!("{base}?simple")).await;
    assert_eq!(body[0]["properties"]["segments"]["count"], 2);
    assert_eq!(
        body[0]["properties"]["segments"]["minTime"],
        "2015-09-12T00:00:00.000Z"
    );

    // Newest first.
    let (code, body) = server.get(&format!("{base}/wiki/intervals")).await;
    assert_eq!((code, body), (200, json!([DAY13, DAY12])));
    let (_, body) = server.get(&format!("{base}/wiki/intervals?simple")).await;
    assert_eq!(body[DAY12]["count"], 1);
    assert!(body[DAY12]["size"].as_u64().unwrap() > 0);
    let (_, body) = server.get(&format!("{base}/wiki/intervals?full")).await;
    let day: &serde_json::Map<String, Value> = body[DAY13].as_object().unwrap();
    let (id, entry) = day.iter().next().unwrap();
    assert_eq!(entry["metadata"]["identifier"], json!(id));
    let server_addr = server.base.trim_start_matches("http://").to_string();
    assert_eq!(entry["servers"], json!([server_addr]));

    // Inside an interval written with `_`.
    let (code, body) = server
        .get(&format!(
            "{base}/wiki/intervals/2015-09-13T00:00:00.000Z_2015-09-14T00:00:00.000Z"
        ))
        .await;
    assert_eq!(code, 200);
    assert_eq!(body.as_array().unwrap().len(), 1);

    // Unknown datasource: 204, empty.
    let r = server
        .client
        .get(format!("{}{base}/nope/intervals", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(r.text().await.unwrap(), "");
    server.stop().await;
}
