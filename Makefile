# berth: the two commands a new machine needs are `make daemon` and `make test`.
.PHONY: deps daemon test lint bench abuse

deps:
	./scripts/install-deps.sh

# Builds and runs berthd with its defaults: root /var/lib/berth, state /run/berth,
# socket /run/berth/berthd.sock. Run as root.
daemon: deps
	cargo build --release -p berthd
	./target/release/berthd

# The whole suite: unit tests and integration tests against the real daemon, runc and socket.
test: deps
	cargo build --workspace --bins
	cargo test --workspace --no-fail-fast

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

bench: deps
	cargo build --release --workspace --bins
	./target/release/berth-bench

# Hostile clients (issue #9) against a fresh berthd: prints peak RSS, the slowest
# well-behaved reply and the count of -32603 answers.
abuse: deps
	cargo build --release -p berthd -p berth-tests --bins
	$${CARGO_TARGET_DIR:-target}/release/berth-abuse
