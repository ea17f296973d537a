use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::*;

fn limits(max_bytes: u64, max_files: u32) -> Limits {
    Limits {
        max_bytes,
        max_files,
    }
}

fn texts(cursor: &mut Cursor) -> Vec<(Stream, bool, String)> {
    let mut out = Vec::new();
    while let Some(e) = cursor.next_entry().expect("read") {
        out.push((e.stream, e.partial, e.text));
    }
    out
}

#[test]
fn lines_are_cut_at_newlines_and_long_lines_into_partial_pieces() {
    let mut pending = Vec::new();
    let lines = split(&mut pending, b"one\ntw", false);
    assert_eq!(lines, vec![(false, 0, 3)]);
    consume(&mut pending, &lines);
    assert_eq!(pending, b"tw");
    let lines = split(&mut pending, b"o\n", false);
    assert_eq!(&pending[lines[0].1..lines[0].2], b"two");
    consume(&mut pending, &lines);
    assert!(pending.is_empty());

    let long = vec![b'x'; MAX_LINE + 10];
    let lines = split(&mut pending, &long, false);
    assert_eq!(lines, vec![(true, 0, MAX_LINE)]);
    consume(&mut pending, &lines);
    assert_eq!(pending.len(), 10);
    // The end of the stream flushes the rest as a partial piece.
    let lines = split(&mut pending, b"", true);
    assert_eq!(lines, vec![(true, 0, 10)]);
    consume(&mut pending, &lines);
    assert!(pending.is_empty());
}

#[test]
fn entries_are_written_in_the_cri_format_and_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c/task.log");
    let mut log = LogFile::open(&path, limits(1 << 20, 2)).expect("open");
    let time = crate::store::now();
    log.write(&time, Stream::Stderr, &[(false, b"boom"), (true, b"half")])
        .expect("write");
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(
        text,
        format!("{time} stderr F boom\n{time} stderr P half\n")
    );
    assert_eq!(time.len(), "2026-01-01T00:00:00.000000000Z".len(), "{time}");
    let mut cursor = Cursor::new(&path, limits(1 << 20, 2));
    assert_eq!(
        texts(&mut cursor),
        vec![
            (Stream::Stderr, false, "boom".into()),
            (Stream::Stderr, true, "half".into())
        ]
    );
    assert!(parse(b"garbage").is_none());
    assert!(parse(b"2026 stdin F x").is_none());
}

#[test]
fn the_log_rotates_at_its_cap_and_keeps_max_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("task.log");
    let lim = limits(200, 3);
    let mut log = LogFile::open(&path, lim).expect("open");
    let time = crate::store::now();
    for i in 0..40 {
        let line = format!("line {i:02}");
        log.write(&time, Stream::Stdout, &[(false, line.as_bytes())])
            .expect("write");
    }
    for n in 0..3 {
        let size = std::fs::metadata(rotated(&path, n)).expect("kept").len();
        assert!(size <= 200, "file {n} is {size} bytes");
    }
    assert!(!rotated(&path, 3).exists(), "only 3 files are kept");
    // Read back, oldest first, the newest lines, in order, ending with the last one.
    let got: Vec<String> = texts(&mut Cursor::new(&path, lim))
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(got.last().map(String::as_str), Some("line 39"));
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted);
    assert!(got.len() >= 9, "{got:?}");
}

#[test]
fn a_following_cursor_crosses_a_rotation_without_losing_a_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("task.log");
    let lim = limits(120, 2);
    let mut log = LogFile::open(&path, lim).expect("open");
    let time = crate::store::now();
    let mut cursor = Cursor::new(&path, lim);
    let mut seen = Vec::new();
    for i in 0..30 {
        let line = format!("n{i}");
        log.write(&time, Stream::Stdout, &[(false, line.as_bytes())])
            .expect("write");
        seen.extend(texts(&mut cursor).into_iter().map(|(_, _, t)| t));
    }
    let want: Vec<String> = (0..30).map(|i| format!("n{i}")).collect();
    assert_eq!(seen, want);
}

#[test]
fn a_line_torn_by_a_crash_is_ended_before_the_next_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("task.log");
    std::fs::write(&path, b"2026-01-01T00:00:00.000000000Z stdout F cut sh").expect("write");
    let mut log = LogFile::open(&path, limits(1 << 20, 2)).expect("open");
    let time = crate::store::now();
    log.write(&time, Stream::Stdout, &[(false, b"next")])
        .expect("write");
    let got = texts(&mut Cursor::new(&path, limits(1 << 20, 2)));
    assert_eq!(
        got,
        vec![
            (Stream::Stdout, false, "cut sh".into()),
            (Stream::Stdout, false, "next".into())
        ]
    );
}

#[test]
fn a_half_written_line_waits_for_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("task.log");
    let mut file = std::fs::File::create(&path).expect("create");
    let mut cursor = Cursor::new(&path, limits(1 << 20, 2));
    file.write_all(b"2026-01-01T00:00:00.000000000Z stdout F he")
        .expect("write");
    assert!(cursor.next_entry().expect("read").is_none());
    file.write_all(b"llo\n").expect("write");
    let e = cursor.next_entry().expect("read").expect("entry");
    assert_eq!(e.text, "hello");
}

#[test]
fn the_copier_drains_both_pipes_into_one_log_and_says_when_it_is_done() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("task.log");
    let log = Arc::new(Mutex::new(
        LogFile::open(&path, limits(1 << 20, 2)).expect("open"),
    ));
    let (out_r, out_w) = pipe().expect("pipe");
    let (err_r, err_w) = pipe().expect("pipe");
    let ends = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&ends);
    let notify: Notify = Arc::new(move |end| {
        if end {
            seen.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut copier = start(
        vec![(Stream::Stdout, out_r), (Stream::Stderr, err_r)],
        log,
        notify,
    )
    .expect("start");
    let mut out = std::fs::File::from(out_w);
    let mut err = std::fs::File::from(err_w);
    out.write_all(b"to out\nno newline").expect("write");
    err.write_all(b"to err\n").expect("write");
    drop(out);
    drop(err);
    let done = copier.done.take().expect("done");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("rt");
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), done).await })
        .expect("the copy ends when both pipes do")
        .expect("done sent");
    assert_eq!(ends.load(Ordering::SeqCst), 1);
    let mut got = texts(&mut Cursor::new(&path, limits(1 << 20, 2)));
    got.sort_by(|a, b| a.2.cmp(&b.2));
    assert_eq!(
        got,
        vec![
            (Stream::Stdout, true, "no newline".into()),
            (Stream::Stderr, false, "to err".into()),
            (Stream::Stdout, false, "to out".into()),
        ]
    );
}

#[test]
fn dropping_the_copier_stops_it_while_a_writer_lives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("task.log");
    let log = Arc::new(Mutex::new(
        LogFile::open(&path, limits(1 << 20, 2)).expect("open"),
    ));
    let (r, _w) = pipe().expect("pipe");
    let (tx, rx) = std::sync::mpsc::channel();
    let notify: Notify = Arc::new(move |end| {
        if end {
            let _ = tx.send(());
        }
    });
    let copier = start(vec![(Stream::Stdout, r)], log, notify).expect("start");
    drop(copier);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the thread ends although the writer is open");
}
