################################################################################
#
# webui
#
################################################################################

# webui: the browser GUI (HTTPS), which drives lbd and netcfg.
# Built from the Cargo workspace that holds this tree (lbd-workspace-member
# in external.mk); a local source has version "custom".
$(eval $(call lbd-workspace-member,WEBUI,webui))
$(eval $(cargo-package))
