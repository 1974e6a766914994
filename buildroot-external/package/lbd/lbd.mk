################################################################################
#
# lbd
#
################################################################################

# lbd: the load-balancer daemon.
# Built from the Cargo workspace that holds this tree (lbd-workspace-member
# in external.mk); a local source has version "custom".
$(eval $(call lbd-workspace-member,LBD,lbd))
$(eval $(cargo-package))
