//! Choosing the store from configuration: refusals before listening that
//! never show the URL, and the one-instance rule on PostgreSQL.

use crate::support::{drop_schema_of, postgres_or_skip, schema_for};
use hotdeal::config::Secret;
use hotdeal::{App, Config};

fn temp_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hotdeal-backend-{}", uuid::Uuid::new_v4()))
}

/// With a password in it, so the test can look for it in the messages.
fn with_password(url: &str) -> String {
    url.replacen(
        "postgres://postgres@",
        "postgres://postgres:pa55word-value@",
        1,
    )
}

#[tokio::test]
async fn an_unusable_store_setting_is_refused_before_listening_without_showing_it() {
    let dir = temp_dir();
    for (url, schema, why) in [
        (
            "mysql://app:pa55word-value@db.internal/shop",
            None,
            "unsupported database URL",
        ),
        (
            "postgres://app:pa55word-value@127.0.0.1:1/shop",
            None,
            "opening the PostgreSQL store",
        ),
        (
            "postgres://app:pa55word-value@127.0.0.1:1/shop",
            Some("Bad-Schema"),
            "database_schema",
        ),
        ("sqlite://x.db", Some("shop"), "PostgreSQL only"),
    ] {
        let mut config = Config::for_tests(&dir);
        config.database_url = Secret::new(url);
        config.database_schema = schema.map(str::to_owned);
        let Err(e) = App::build(&config).await else {
            panic!("{why}: started");
        };
        let shown = format!("{e:#} {e:?}");
        assert!(shown.contains(why), "{why}: {shown}");
        assert!(!shown.contains("pa55word-value"), "{shown}");
        assert!(!shown.contains("db.internal"), "{shown}");
    }
    std::fs::remove_dir_all(dir).ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_on_the_same_postgres_schema_refuses_to_start() {
    let Some(url) =
        postgres_or_skip("a_second_instance_on_the_same_postgres_schema_refuses_to_start")
    else {
        return;
    };
    let dir = temp_dir();
    let mut config = Config::for_tests(&dir);
    config.database_url = Secret::new(with_password(&url));
    config.database_schema = Some(schema_for(&dir));
    let first = App::build(&config)
        .await
        .expect("the first instance starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(first.serve(async {
        let _ = stopped.await;
    }));

    let Err(e) = App::build(&config).await else {
        panic!("a second instance started on the same schema");
    };
    let shown = format!("{e:#}");
    assert!(shown.contains("another hotdeal instance"), "{shown}");
    assert!(!shown.contains("pa55word-value"), "{shown}");

    // Another schema is another store: it starts beside the first.
    let other_dir = temp_dir();
    let mut other = config.clone();
    other.database_schema = Some(schema_for(&other_dir));
    other.data_dir = other_dir.clone();
    let beside = App::build(&other).await.expect("another schema starts");
    drop(beside);

    // Once the first stops, its lock is released and a new one starts.
    stop.send(()).expect("stop");
    serving.await.expect("join").expect("serve");
    let again = App::build(&config)
        .await
        .expect("starts after the first stopped");
    drop(again);
    std::fs::remove_dir_all(&dir).ok();
    std::fs::remove_dir_all(&other_dir).ok();
    drop_schema_of(&dir);
    drop_schema_of(&other_dir);
}
