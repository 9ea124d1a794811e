// The _cellfeed extension module: one init function per C++ area.
#include <nanobind/nanobind.h>

#include <thread>

#include "cellfeed/collection.h"
#include "convert.h"

namespace cellfeed::python {
void BindCollection(nb::module_& m);
void BindLoader(nb::module_& m);
void BindCorpus(nb::module_& m);
void BindTransform(nb::module_& m);
void BindStorage(nb::module_& m);
void BindPerturb(nb::module_& m);
}

namespace {

std::thread::id g_main_thread;

// Ctrl-C while an open probe runs: Python's handlers run on the main thread only (and
// taking the GIL from another thread could wait on a main thread that holds it).
bool PythonInterrupted() {
  if (std::this_thread::get_id() != g_main_thread) return false;
  nanobind::gil_scoped_acquire gil;
  return PyErr_CheckSignals() != 0;
}

}  // namespace

NB_MODULE(_cellfeed, m) {
  using namespace cellfeed;
  using cellfeed::python::StatusError;
  nanobind::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const StatusError& e) {
      // Cancelled by Ctrl-C (the probe interrupt check below): the KeyboardInterrupt that
      // Python's handler raised is already set; let it through.
      if (e.code == StatusCode::kCancelled && PyErr_Occurred()) return;
      PyObject* type = PyExc_ValueError;
      if (e.code == StatusCode::kIOError) type = PyExc_OSError;
      if (e.code == StatusCode::kOutOfRange) type = PyExc_IndexError;
      if (e.code == StatusCode::kCancelled) type = PyExc_RuntimeError;
      PyErr_SetString(type, e.what());
    }
  });
  g_main_thread = std::this_thread::get_id();  // the importing thread: the main one, usually
  cellfeed::SetOpenInterruptCheck(&PythonInterrupted);
  m.def("_forget_open_probes", &cellfeed::ForgetOpenProbes,
        "Forget which files' open probes succeeded, so the next open probes them again.");
  cellfeed::python::BindCollection(m);
  cellfeed::python::BindLoader(m);
  cellfeed::python::BindCorpus(m);
  cellfeed::python::BindTransform(m);
  cellfeed::python::BindStorage(m);
  cellfeed::python::BindPerturb(m);
}
