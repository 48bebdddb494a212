# Installs the library, headers and the `deepspeed` launcher, and exports a CMake package so a user program
# can do find_package(DeepSpeedCpp) and link DeepSpeedCpp::deepspeed.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(DIRECTORY include/deepspeed DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET deepspeed_launcher)
  install(TARGETS deepspeed_launcher RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
set(DS_EXPORTED ds_util ds_config ds_schedules ds_monitor)
if(DS_WITH_TORCH)
  foreach(t ds_comm ds_zero ds_optim ds_precision ds_profiling ds_checkpoint ds_data ds_engine ds_ops ds_ops_cuda ds_optim_cuda ds_zero_cuda deepspeed)
    if(TARGET ${t})
      list(APPEND DS_EXPORTED ${t})
    endif()
  endforeach()
endif()
install(TARGETS ${DS_EXPORTED} EXPORT DeepSpeedCppTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT DeepSpeedCppTargets NAMESPACE DeepSpeedCpp:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/DeepSpeedCpp)
configure_package_config_file(cmake/DeepSpeedCppConfig.cmake.in ${CMAKE_BINARY_DIR}/DeepSpeedCppConfig.cmake
                              INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/DeepSpeedCpp)
write_basic_package_version_file(${CMAKE_BINARY_DIR}/DeepSpeedCppConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/DeepSpeedCppConfig.cmake ${CMAKE_BINARY_DIR}/DeepSpeedCppConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/DeepSpeedCpp)
