// The _cellfeed extension module: one init function per C++ area.
#include <nanobind/nanobind.h>

#include "convert.h"

namespace cellfeed::python {
void BindCollection(nb::module_& m);
void BindLoader(nb::module_& m);
void BindCorpus(nb::module_& m);
void BindTransform(nb::module_& m);
}

NB_MODULE(_cellfeed, m) {
  using namespace cellfeed;
  using cellfeed::python::StatusError;
  nanobind::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const StatusError& e) {
      PyObject* type = PyExc_ValueError;
      if (e.code == StatusCode::kIOError) type = PyExc_OSError;
      if (e.code == StatusCode::kOutOfRange) type = PyExc_IndexError;
      if (e.code == StatusCode::kCancelled) type = PyExc_RuntimeError;
      PyErr_SetString(type, e.what());
    }
  });
  cellfeed::python::BindCollection(m);
  cellfeed::python::BindLoader(m);
  cellfeed::python::BindCorpus(m);
  cellfeed::python::BindTransform(m);
}
