//! Without `--cfg tokio_unstable` the runtime-hook mode does not exist:
//! asking for it is an error from `build()` that says how to get it, never a
//! runtime that silently frames less; the queries answer `false` / `None`.
#![cfg(not(tokio_unstable))]

use rt_ext as ctx;

#[test]
fn asking_for_every_task_framed_fails_build_naming_the_cfg() {
    for mut builder in [
        ctx::Builder::new_current_thread(),
        ctx::Builder::new_multi_thread(),
    ] {
        let err = builder.frame_every_task(true).build().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
        let msg = err.to_string();
        assert!(msg.contains("--cfg tokio_unstable"), "{msg}");
        assert!(msg.contains(".cargo/config.toml"), "{msg}");
        // Turned off again, the same builder builds.
        let rt = builder.frame_every_task(false).build().unwrap();
        assert!(!rt.frames_every_task());
    }
}

#[test]
fn the_queries_exist_and_say_no() {
    let rt = ctx::Builder::new_multi_thread()
        .frame_every_task(false)
        .build()
        .unwrap();
    assert!(!rt.frames_every_task());
    assert!(!rt.handle().frames_every_task());
    assert_eq!(rt.framed_tasks(), None);
    assert!(!rt.block_on(async { ctx::Handle::current().frames_every_task() }));
}
