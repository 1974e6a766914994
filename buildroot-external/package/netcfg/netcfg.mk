################################################################################
#
# netcfg
#
################################################################################

# netcfg: the network configurator (rtnetlink; VRRP through keepalived).
# Built from the Cargo workspace that holds this tree (lbd-workspace-member
# in external.mk); a local source has version "custom".
$(eval $(call lbd-workspace-member,NETCFG,netcfg))
$(eval $(cargo-package))
