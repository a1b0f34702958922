# Writes OUT (changelog.gz: imgbuild is a native package, its version has no Debian revision) for the
# version in VERSION_TXT: one entry, dated SOURCE_DATE_EPOCH when it is set (string(TIMESTAMP) honours
# it), so that the package is reproducible.
# Variables: VERSION_TXT, OUT, MAINTAINER, GZIP.
file(STRINGS "${VERSION_TXT}" version LIMIT_COUNT 1)
string(TIMESTAMP date "%a, %d %b %Y %H:%M:%S +0000" UTC)
get_filename_component(dir "${OUT}" DIRECTORY)
file(WRITE "${dir}/changelog" "imgbuild (${version}) unstable; urgency=medium\n\n  * Built from imgbuild's source at version ${version}.\n\n -- ${MAINTAINER}  ${date}\n")
execute_process(COMMAND "${GZIP}" -9nf "${dir}/changelog" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gzip failed")
endif()
