"""Names, dimensions and units of the result Dataset: the one place that defines them.

Every module that reads or writes results imports these constants instead of
spelling variable names, so a rename happens here only.
"""

from __future__ import annotations

# Dimensions. Sweep dims are named after the swept field (see ``mcmtj.config``).
SOLUTION = "solution"
INSTANCE = "instance"
GNORM = "gnorm"  # read-out gain grid, evaluated on the same instances
DEVICE = "device"  # used cells of all layers, layer-major then row, column (opt-in outputs)

# Per instance (dims: sweep..., solution, instance[, gnorm]).
ACCURACY = "accuracy"
ACCURACY_TRAIN = "accuracy_train"
AGREEMENT = "agreement"
WRITE_FIDELITY = "write_fidelity"
WEIGHT_FIDELITY = "weight_fidelity"
SENSITIVITY_FIDELITY = "sensitivity_fidelity"
READBACK_FIDELITY = "readback_fidelity"
CURRENT_RMSE = "current_rmse"
N_STUCK = "n_stuck"
N_SHORT = "n_short"
N_OPEN = "n_open"
N_WRITE_ERRORS = "n_write_errors"
N_DISTURBS = "n_disturbs"
N_PULSES = "n_pulses"
N_VERIFY_RETRIES = "n_verify_retries"
N_NONCONVERGED = "n_nonconverged"
N_RESET_ERRORS = "n_reset_errors"

# Per instance and device (dims: sweep..., solution, instance, device), opt-in.
READBACK_CONDUCTANCE = "readback_conductance"
#: coordinates of the ``device`` dim: layer, row and column of each used cell.
DEVICE_LAYER = "device_layer"
DEVICE_ROW = "device_row"
DEVICE_COL = "device_col"

# Per solution (dims: solution[, gnorm]).
SOFTWARE_ACCURACY = "software_accuracy"
SOFTWARE_ACCURACY_TRAIN = "software_accuracy_train"

#: attrs (long_name, units) of every variable mcmtj writes.
VARIABLES = {
    ACCURACY: ("classification accuracy on the evaluation split", "1"),
    ACCURACY_TRAIN: ("classification accuracy on the training split", "1"),
    AGREEMENT: ("fraction of samples predicted as the software network does", "1"),
    WRITE_FIDELITY: ("fraction of devices whose final state equals the target", "1"),
    WEIGHT_FIDELITY: ("fraction of weights whose device pair is fully correct", "1"),
    SENSITIVITY_FIDELITY: ("1 - sensitivity-weighted fraction of wrong devices (weights: accuracy "
                           "lost when that device alone is wrong)", "1"),
    CURRENT_RMSE: ("RMS column-current error relative to the ideal read", "1"),
    N_STUCK: ("devices stuck in P or AP", "count"),
    N_SHORT: ("shorted devices", "count"),
    N_OPEN: ("open devices", "count"),
    N_WRITE_ERRORS: ("write pulses that failed to switch their device", "count"),
    N_DISTURBS: ("half-selected devices switched by a write pulse", "count"),
    N_PULSES: ("write pulses applied", "count"),
    N_VERIFY_RETRIES: ("write pulses repeated after a failed verify read", "count"),
    N_NONCONVERGED: ("reads whose bias-dependent fixed point, or write pulses whose fast "
                     "line solve, did not converge", "count"),
    N_RESET_ERRORS: ("healthy devices left P by a failed reset pulse (write.initial = 'ap')",
                     "count"),
    READBACK_FIDELITY: ("fraction of devices a final verify read reports in their target state "
                        "(what the experimenter sees)", "1"),
    READBACK_CONDUCTANCE: ("effective conductance of the cell as a one-hot calibration read "
                           "measures it (device, or transfer-matrix entry with wires)", "S"),
    SOFTWARE_ACCURACY: ("accuracy of the ideal software network, evaluation split", "1"),
    SOFTWARE_ACCURACY_TRAIN: ("accuracy of the ideal software network, training split", "1"),
}
