# Run by `cmake --install` (CMakeLists.txt includes it with install(SCRIPT)): the files whose
# place or content depends on the prefix, which is known only now (`--prefix` may differ from
# CMAKE_INSTALL_PREFIX at configure time).
#
#   <sysconfdir>/telesink/telesink.conf   /etc for the prefixes /usr and /, else <prefix>/etc
#                                         (GNUInstallDirs' rule, mirrored by resolver/paths.c);
#                                         an existing file that differs is kept, and the new
#                                         default goes beside it as telesink.conf.default
#   <unitdir>/telesink.service            ExecStart and --config naming the installed paths
#   <unitdir>/telesink-report.{service,timer}   the nightly report (not enabled)
#   <datadir>/telesink/cron.d/telesink    the nightly report for cron (copy it to /etc/cron.d)
#
# Inputs, set by install(CODE) just before: TELESINK_SOURCE_DIR, TELESINK_BINARY_DIR,
# TELESINK_BINDIR, TELESINK_LIBEXECDIR, TELESINK_DATADIR, TELESINK_SYSCONFDIR, TELESINK_UNITDIR (relative to the prefix, or absolute;
# empty: no unit).

set(_prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "(.)/+$" "\\1" _prefix "${_prefix}")

function(_telesink_dir out rel)
  if(IS_ABSOLUTE "${rel}")
    set(${out} "${rel}" PARENT_SCOPE)
  elseif(_prefix STREQUAL "/")
    set(${out} "/${rel}" PARENT_SCOPE)
  else()
    set(${out} "${_prefix}/${rel}" PARENT_SCOPE)
  endif()
endfunction()

_telesink_dir(_bindir "${TELESINK_BINDIR}")
_telesink_dir(_libexecdir "${TELESINK_LIBEXECDIR}")
_telesink_dir(_datadir "${TELESINK_DATADIR}")
if(NOT IS_ABSOLUTE "${TELESINK_SYSCONFDIR}" AND (_prefix STREQUAL "/usr" OR _prefix STREQUAL "/"))
  set(_etc "/${TELESINK_SYSCONFDIR}")
else()
  _telesink_dir(_etc "${TELESINK_SYSCONFDIR}")
endif()

# The configuration: never overwrite one an operator has edited.
set(_conf_src "${TELESINK_SOURCE_DIR}/contrib/telesink.conf")
set(_conf "$ENV{DESTDIR}${_etc}/telesink/telesink.conf")
file(READ "${_conf_src}" _new)
if(EXISTS "${_conf}")
  file(READ "${_conf}" _old)
endif()
if(EXISTS "${_conf}" AND NOT _old STREQUAL _new)
  message(STATUS "Keeping ${_conf}: it differs from the packaged default")
  file(INSTALL DESTINATION "${_etc}/telesink" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE
       GROUP_READ WORLD_READ RENAME telesink.conf.default FILES "${_conf_src}")
else()
  file(INSTALL DESTINATION "${_etc}/telesink" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE
       GROUP_READ WORLD_READ FILES "${_conf_src}")
endif()

# A file from the source tree with the installed paths in place of the packaged ones (the
# binary, the nightly job, the configuration), installed into dir as name.
function(_telesink_with_paths src dir name)
  file(READ "${TELESINK_SOURCE_DIR}/${src}" _text)
  string(REPLACE "/usr/libexec/telesink/nightly-report" "${_libexecdir}/telesink/nightly-report"
         _text "${_text}")
  string(REPLACE "/usr/bin/telesink" "${_bindir}/telesink" _text "${_text}")
  string(REPLACE "/etc/telesink/telesink.conf" "${_etc}/telesink/telesink.conf" _text "${_text}")
  file(MAKE_DIRECTORY "${TELESINK_BINARY_DIR}/install")
  file(WRITE "${TELESINK_BINARY_DIR}/install/${name}" "${_text}")
  file(INSTALL DESTINATION "${dir}" TYPE FILE PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ
       WORLD_READ FILES "${TELESINK_BINARY_DIR}/install/${name}")
endfunction()

# The systemd units (the service and the nightly report), and the nightly report for cron.
if(TELESINK_UNITDIR)
  _telesink_dir(_unitdir "${TELESINK_UNITDIR}")
  foreach(_unit telesink.service telesink-report.service telesink-report.timer)
    _telesink_with_paths(contrib/systemd/${_unit} "${_unitdir}" ${_unit})
  endforeach()
endif()
_telesink_with_paths(contrib/cron/telesink "${_datadir}/telesink/cron.d" telesink)
