//! Scale-out: two instances with `instance.count = 2` share one total rate and split the streams.

use crate::common::{
    CASSANDRA, Chatload, REDIS, STACK_LOCK, config_with, ops_series, require_stack,
};
use chatload::chat::workload::stream_index;
use chatload::config;
use chatload::store::scylla::connect;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

async fn streams_written(keyspace: &str) -> BTreeSet<u64> {
    let cfg = config::load_str(
        &config_with(CASSANDRA, REDIS, keyspace, ""),
        Path::new("t"),
        [],
        &chatload::probes::registry::catalog(),
    )
    .unwrap();
    let s = connect(&cfg.scylla, None).await.unwrap();
    let rows = s
        .query_unpaged(
            format!("SELECT DISTINCT stream_id FROM {keyspace}.chat_messages"),
            &[],
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap();
    rows.rows::<(uuid::Uuid,)>()
        .unwrap()
        .map(|r| stream_index(&r.unwrap().0).expect("only traffic streams"))
        .collect()
}

async fn drop_keyspace(keyspace: &str) {
    let cfg = config::load_str(
        &config_with(CASSANDRA, REDIS, keyspace, ""),
        Path::new("t"),
        [],
        &chatload::probes::registry::catalog(),
    )
    .unwrap();
    let s = connect(&cfg.scylla, None).await.unwrap();
    // Dropping a keyspace with data takes longer than the 2 s client timeout of the tests.
    let mut drop = scylla::statement::Statement::new(format!("DROP KEYSPACE IF EXISTS {keyspace}"));
    drop.set_request_timeout(Some(Duration::from_secs(60)));
    s.query_unpaged(drop, &[]).await.unwrap();
}

/// Two replicas (`count = 2`; one takes its index from a StatefulSet pod name): disjoint streams that
/// together cover all of them, and a summed rate within 2 % of the total.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_split_streams_and_share_the_rate() {
    let _stack = STACK_LOCK.write().await;
    require_stack();
    // Probes off: only the traffic writes to these keyspaces.
    let traffic = "[traffic]\nwrite_rate = 2000.0\nread_rate = 0.0\nstreams = 100\n";
    // Like for like with the rate assertion: the database writes only.
    let no_redis = [
        ("CHATLOAD_REDIS__CACHE", "false"),
        ("CHATLOAD_REDIS__PUBSUB", "false"),
    ];
    let probes_off = crate::common::probes_only(&[], "1s");
    let (ks0, ks1) = ("chatload_it_replica0", "chatload_it_replica1");
    drop_keyspace(ks0).await;
    drop_keyspace(ks1).await;
    let cfg = |ks: &str, instance: &str| {
        config_with(
            CASSANDRA,
            REDIS,
            ks,
            &format!("{traffic}{probes_off}{instance}"),
        )
    };
    // Replica 0 is told its index by the file, replica 1 by its pod name.
    let a =
        Chatload::start_with_env(&cfg(ks0, "[instance]\ncount = 2\nindex = 0\n"), &no_redis).await;
    let pod = [
        no_redis[0],
        no_redis[1],
        ("CHATLOAD_POD_NAME", "chatload-1"),
    ];
    let b = Chatload::start_with_env(&cfg(ks1, "[instance]\ncount = 2\n"), &pod).await;
    let ok = ops_series("scylla", "write", "ok");
    let t = Instant::now();
    while a.metric(&ok).await < 1000.0 || b.metric(&ok).await < 1000.0 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "replicas did not start writing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let target = r#"chatload_target_rate{op="write"}"#;
    assert_eq!(a.metric(target).await, 1000.0);
    assert_eq!(b.metric(target).await, 1000.0);
    let (a1, b1, t1) = (a.metric(&ok).await, b.metric(&ok).await, Instant::now());
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (a2, b2, t2) = (a.metric(&ok).await, b.metric(&ok).await, Instant::now());
    let secs = (t2 - t1).as_secs_f64();
    let sum = (a2 - a1 + b2 - b1) / secs;
    eprintln!(
        "replica rates: {:.1}/s + {:.1}/s = {sum:.1}/s (total target 2000/s)",
        (a2 - a1) / secs,
        (b2 - b1) / secs
    );
    assert!((sum / 2000.0 - 1.0).abs() < 0.02, "summed rate {sum:.1}/s");
    assert_eq!(a.stop(Duration::from_secs(10)).await.0, Some(0));
    assert_eq!(b.stop(Duration::from_secs(10)).await.0, Some(0));

    let s0 = streams_written(ks0).await;
    let s1 = streams_written(ks1).await;
    eprintln!(
        "replica 0 wrote {} streams, replica 1 wrote {}",
        s0.len(),
        s1.len()
    );
    assert!(
        s0.is_disjoint(&s1),
        "a stream written by both: {:?}",
        s0.intersection(&s1).next()
    );
    assert_eq!(
        s0.union(&s1).count(),
        100,
        "together they cover every stream"
    );
    assert!(s0.iter().all(|s| s % 2 == 0) && s1.iter().all(|s| s % 2 == 1));
    drop_keyspace(ks0).await;
    drop_keyspace(ks1).await;
}
