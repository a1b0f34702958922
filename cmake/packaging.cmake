# What `cmake --install` puts in place besides the binary (a man page from --help, bash completion,
# the Debian copyright and changelog), and the Debian package: `cpack -G DEB` (ci/package.sh) makes
# imgbuild_<version>_<arch>.deb with Depends computed by dpkg-shlibdeps.
include(GNUInstallDirs)
set(imgbuild_generated ${CMAKE_BINARY_DIR}/generated)
set(imgbuild_version_txt ${imgbuild_generated}/version.txt)
set(IMGBUILD_MAINTAINER "imgbuild maintainers <imgbuild@users.noreply.github.com>" CACHE STRING "Maintainer of the Debian package")

install(FILES packaging/imgbuild.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME imgbuild)

find_program(GZIP_PROGRAM gzip REQUIRED)
find_program(HELP2MAN_PROGRAM help2man)
if(HELP2MAN_PROGRAM)
  # help2man dates the page from SOURCE_DATE_EPOCH when it is set.
  add_custom_command(OUTPUT ${imgbuild_generated}/imgbuild.1.gz
    COMMAND ${HELP2MAN_PROGRAM} --no-info --section=1
            "--name=OS images, netboot trees and NFS roots for Raspberry Pi and Debian clusters"
            --output=${imgbuild_generated}/imgbuild.1 $<TARGET_FILE:imgbuild>
    COMMAND ${GZIP_PROGRAM} -9nf ${imgbuild_generated}/imgbuild.1
    DEPENDS imgbuild
    COMMENT "imgbuild.1 from imgbuild --help (help2man)" VERBATIM)
  add_custom_target(imgbuild_man ALL DEPENDS ${imgbuild_generated}/imgbuild.1.gz)
  install(FILES ${imgbuild_generated}/imgbuild.1.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(STATUS "help2man not found: no man page (apt-get install help2man)")
endif()

add_custom_command(OUTPUT ${imgbuild_generated}/changelog.gz
  COMMAND ${CMAKE_COMMAND} -DVERSION_TXT=${imgbuild_version_txt} -DOUT=${imgbuild_generated}/changelog.gz
          "-DMAINTAINER=${IMGBUILD_MAINTAINER}" -DGZIP=${GZIP_PROGRAM} -P ${PROJECT_SOURCE_DIR}/cmake/deb-changelog.cmake
  DEPENDS ${imgbuild_version_txt} ${PROJECT_SOURCE_DIR}/cmake/deb-changelog.cmake
  COMMENT "changelog.gz" VERBATIM)
add_custom_target(imgbuild_changelog ALL DEPENDS ${imgbuild_generated}/changelog.gz)
add_dependencies(imgbuild_changelog imgbuild_version)
install(FILES packaging/copyright ${imgbuild_generated}/changelog.gz DESTINATION ${CMAKE_INSTALL_DOCDIR})

configure_file(cmake/cpack-version.cmake.in ${CMAKE_BINARY_DIR}/cpack-version.cmake @ONLY)
set(CPACK_PROJECT_CONFIG_FILE ${CMAKE_BINARY_DIR}/cpack-version.cmake)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME imgbuild)
set(CPACK_PACKAGE_CONTACT "${IMGBUILD_MAINTAINER}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "OS images, netboot trees and NFS roots from one recipe")
# cpack puts the summary on the Description: line and indents these lines itself.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "imgbuild reads a base (a root filesystem tarball or folder, or a disk
image such as Raspberry Pi OS's), applies a YAML recipe's steps (users, SSH,
networkd, cloud-init, containerd, Kubernetes prerequisites, boot options,
files) and writes root filesystem tarballs, SD card images, and TFTP trees
with NFS roots for diskless Raspberry Pi and Debian cluster nodes: offline,
reproducibly, and without mounting anything or needing loop devices.")
include(CPack)
