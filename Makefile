# Layer builds for SAM (`BuildMethod: makefile` in template.yaml). SAM runs
#   make --makefile <this file> build-<LogicalId>
# in the repository root (the layers' `WorkingDirectory`), with ARTIFACTS_DIR set to the
# directory whose contents become the layer. Lambda unpacks a layer under /opt, so the
# binary goes to $(ARTIFACTS_DIR)/extensions/hearth (= /opt/extensions/hearth, where Lambda
# looks for external extensions) and the optional RDS CA bundle to
# $(ARTIFACTS_DIR)/hearth/rds-ca-bundle.pem (= the default of HEARTH_DB_CA_BUNDLE).
#
# Knobs (environment or `make VAR=...`):
#   CARGO_TARGET_DIR  cargo's target dir (default: the workspace's target/); SAM's Rust
#                     builder uses it for the functions.
#   LAYER_TARGET_DIR  where the layer builds (default: $(CARGO_TARGET_DIR)/hearth-layer).
#   CARGO_LAMBDA      command that runs cargo-lambda (default: cargo lambda)
#   NICE              prefix for the build command, e.g. "nice -n 19"
#   GLIBC             glibc version the binary links against (default 2.26, see below)
#   RDS_CA_BUNDLE     PEM file shipped as /opt/hearth/rds-ca-bundle.pem
#                     (default: deploy/rds-ca-bundle.pem, when it exists)
#
# The two architectures build into separate --lambda-dir directories, so `sam build
# --parallel` cannot copy one architecture's binary into the other's layer.

CARGO_TARGET_DIR ?= $(CURDIR)/target
# The layer links against an older glibc than the functions (see GLIBC below). cargo-lambda
# hands the zig linker to rustc through the rustflags, so a layer build and a function build
# sharing one target dir would invalidate each other's artifacts and rebuild everything
# each time: the layer gets a target dir of its own.
LAYER_TARGET_DIR ?= $(CARGO_TARGET_DIR)/hearth-layer
CARGO_LAMBDA ?= cargo lambda
NICE ?=
RDS_CA_BUNDLE ?= $(CURDIR)/deploy/rds-ca-bundle.pem

# $(1): extra cargo-lambda flags (architecture), $(2): lambda-dir name.
define build_layer
	test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (SAM sets it)" >&2; exit 2; }
	CARGO_TARGET_DIR="$(LAYER_TARGET_DIR)" $(NICE) $(CARGO_LAMBDA) build --release --extension $(1) \
		--package hearth-extension --bin hearth \
		--lambda-dir "$(LAYER_TARGET_DIR)/$(2)"
	install -D -m 0755 "$(LAYER_TARGET_DIR)/$(2)/extensions/hearth" "$(ARTIFACTS_DIR)/extensions/hearth"
	if [ -f "$(RDS_CA_BUNDLE)" ]; then \
		install -D -m 0644 "$(RDS_CA_BUNDLE)" "$(ARTIFACTS_DIR)/hearth/rds-ca-bundle.pem"; \
	else \
		echo "note: $(RDS_CA_BUNDLE) not found; the layer ships no RDS CA bundle (set HEARTH_DB_CA_BUNDLE, or see docs/deploy.md)" >&2; \
	fi
endef

.PHONY: build-HearthLayerX86 build-HearthLayerArm64

# The layer may be attached to functions on any runtime, including the Amazon Linux 2 ones
# (provided.al2, python3.11 and older, nodejs18.x, java17 and older), whose glibc is 2.26:
# link against glibc 2.26 (cargo-lambda passes the ".2.26" suffix to zig; rustc sees the
# plain triple). cargo-lambda's default glibc is newer, and a binary needing
# GLIBC_2.28+ would not start there. `scripts/check-layer.sh --max-glibc 2.26` checks it.
GLIBC ?= 2.26

build-HearthLayerX86:
	$(call build_layer,--target x86_64-unknown-linux-gnu.$(GLIBC),lambda-x86_64)

build-HearthLayerArm64:
	$(call build_layer,--target aarch64-unknown-linux-gnu.$(GLIBC),lambda-arm64)
