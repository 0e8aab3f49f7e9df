# The ecosystem around the daemon: man pages (scdoc), the systemd unit, bash
# completion, the example policy, the policy's JSON Schema, and their tests.
# Included at the end of the top Makefile.am:
#
#   include $(top_srcdir)/man/local.mk
#
# It needs from configure.ac: SCDOC (the scdoc program), systemdsystemunitdir
# and the conditional HAVE_SYSTEMD.  Paths are relative to the top build
# directory, sources are read from $(srcdir): VPATH builds work.

# Placeholders in the unit and the man pages, filled in by make so that they
# follow configure's --prefix, --sbindir, --libdir and --sysconfdir.  The [@]
# keeps config.status from filling in the sed patterns themselves.
aua_subst = sed \
	-e 's|@sbindir[@]|$(sbindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@pkglibdir[@]|$(pkglibdir)|g' \
	-e 's|@VERSION[@]|$(VERSION)|g'

# ---- man pages ----

man_MANS = man/auto-usb-attach.8 man/auto-usb-attachctl.8 man/auto-usb-attach.yaml.5
aua_man_scd = \
	man/auto-usb-attach.8.scd \
	man/auto-usb-attachctl.8.scd \
	man/auto-usb-attach.yaml.5.scd

# One rule per page: a suffix rule cannot map x.8.scd to x.8.
aua_scdoc = $(AM_V_GEN)$(MKDIR_P) man && \
	$(SCDOC) <$(srcdir)/$@.scd >$@.tmp && \
	$(aua_subst) $@.tmp >$@.tmp2 && rm -f $@.tmp && mv -f $@.tmp2 $@

man/auto-usb-attach.8: man/auto-usb-attach.8.scd Makefile
	$(aua_scdoc)
man/auto-usb-attachctl.8: man/auto-usb-attachctl.8.scd Makefile
	$(aua_scdoc)
man/auto-usb-attach.yaml.5: man/auto-usb-attach.yaml.5.scd Makefile
	$(aua_scdoc)

# ---- systemd unit ----

if HAVE_SYSTEMD
systemdsystemunit_DATA = contrib/auto-usb-attach.service
endif
contrib/auto-usb-attach.service: contrib/auto-usb-attach.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) contrib && \
	$(aua_subst) $(srcdir)/contrib/auto-usb-attach.service.in >$@.tmp && mv -f $@.tmp $@

# ---- bash completion ----

bashcompletiondir = $(datadir)/bash-completion/completions
dist_bashcompletion_DATA = \
	contrib/completion/auto-usb-attach \
	contrib/completion/auto-usb-attachctl

# ---- the example policy, as the policy of a new install ----
# Installed only where there is no policy yet: an admin's file is never
# overwritten.  Uninstalled only if it is still the example, unchanged.
# policy.d/, the drop-ins' directory, is made empty (and removed if empty).

aua_policydir = $(sysconfdir)/auto-usb-attach
aua_policy = $(DESTDIR)$(aua_policydir)/policy.yaml

install-data-local: aua-install-policy
aua-install-policy:
	$(MKDIR_P) '$(DESTDIR)$(aua_policydir)' '$(DESTDIR)$(aua_policydir)/policy.d'
	@if test -e '$(aua_policy)'; then \
	  echo "$(aua_policy) exists: not overwritten"; \
	else \
	  echo " $(INSTALL_DATA) $(srcdir)/policy/example.yaml '$(aua_policy)'"; \
	  $(INSTALL_DATA) '$(srcdir)/policy/example.yaml' '$(aua_policy)'; \
	fi

uninstall-local: aua-uninstall-policy
aua-uninstall-policy:
	@if cmp -s '$(srcdir)/policy/example.yaml' '$(aua_policy)'; then \
	  echo " rm -f '$(aua_policy)'"; \
	  rm -f '$(aua_policy)'; \
	elif test -e '$(aua_policy)'; then \
	  echo "$(aua_policy) was changed: kept"; \
	fi
	-@rmdir '$(DESTDIR)$(aua_policydir)/policy.d' 2>/dev/null || :
	-@rmdir '$(DESTDIR)$(aua_policydir)' 2>/dev/null || :

.PHONY: aua-install-policy aua-uninstall-policy

# ---- tests, distribution, cleaning ----

TESTS += man/check-man.sh policy/check-schema.py

EXTRA_DIST += \
	man/local.mk \
	$(aua_man_scd) \
	contrib/auto-usb-attach.service.in \
	policy/schema.json \
	policy/example.yaml \
	policy/windows-gaming-hub.yaml \
	policy/vault-security-keys.yaml \
	policy/sys-usb.yaml \
	policy/legacy-command-line.yaml

CLEANFILES = $(man_MANS) $(man_MANS:=.tmp) $(man_MANS:=.tmp2) \
	contrib/auto-usb-attach.service contrib/auto-usb-attach.service.tmp

# Build products in the directories that the top EXTRA_DIST ships whole
# (contrib, policy): when the tree was built and checked in place they would
# go into the tarball, the unit with this build's paths, the test logs
# making the tarball's own make check think it is done.
dist-hook: aua-dist-hook
aua-dist-hook:
	rm -f $(distdir)/contrib/auto-usb-attach.service \
	  $(distdir)/policy/*.log $(distdir)/policy/*.trs

.PHONY: aua-dist-hook

# make distcheck installs under its own prefix: the unit goes there too, not
# to the system's unit directory.  The shell running configure expands
# $dc_install_base.
AM_DISTCHECK_CONFIGURE_FLAGS = \
	--with-systemdsystemunitdir="$$dc_install_base/lib/systemd/system"
