# lbd-workspace-member,PKG,CRATE: the variables of a package that builds the
# binary CRATE of the Cargo workspace holding this tree, with Buildroot's
# cargo-package infrastructure. Each package/<name>/<name>.mk calls it, then
# $(cargo-package).
#  - A local source: Buildroot rsyncs the workspace into the build directory,
#    leaving out the developer's build products (target/ is tens of GB), the
#    fuzzing tree, the docs and this tree.
#  - The root Cargo.toml is a virtual manifest: build one member's binary.
#  - pkg-cargo.mk builds with --offline --locked, counting on its download
#    step to have vendored the crates, which a local source skips: a pre-build
#    hook fetches the locked crates into the cargo home the build uses
#    (BR_CARGO_HOME, in DL_DIR, shared by the packages) under the lock
#    Buildroot's own vendoring takes. It needs the network the first time.
#  - "cargo install" refuses a virtual manifest: the binary is copied from
#    the profile directory the build used (debug with BR2_ENABLE_DEBUG).
define lbd-workspace-member
$(1)_SITE = $$(BR2_EXTERNAL_LBD_APPLIANCE_PATH)/..
$(1)_SITE_METHOD = local
$(1)_LICENSE = MIT or Apache-2.0
$(1)_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /target --exclude /fuzz --exclude /docs \
	--exclude /buildroot-external --exclude /output
$(1)_CARGO_BUILD_OPTS = --package $(2) --bin $(2)
define $(1)_CARGO_FETCH
	mkdir -p $$(BR_CARGO_HOME)
	cd $$(@D) && $$(TARGET_MAKE_ENV) CARGO_HOME=$$(BR_CARGO_HOME) \
		flock $$(BR_CARGO_HOME)/.br-lock \
		cargo fetch --locked --manifest-path Cargo.toml
endef
$(1)_PRE_BUILD_HOOKS += $(1)_CARGO_FETCH
define $(1)_INSTALL_TARGET_CMDS
	$$(INSTALL) -D -m 0755 \
		$$(@D)/target/$$(RUSTC_TARGET_NAME)/$$(if $$(BR2_ENABLE_DEBUG),debug,release)/$(2) \
		$$(TARGET_DIR)/usr/sbin/$(2)
endef
endef

# Pull in every package makefile of this tree.
include $(sort $(wildcard $(BR2_EXTERNAL_LBD_APPLIANCE_PATH)/package/*/*.mk))
