"""Kayenta's judge: its own test suites reproduced, then the judgment schedule.

The reference assertions come from Kayenta's public suites in the spinnaker monorepo,
``kayenta/kayenta-judge/src/test/scala/com/netflix/kayenta/judge/``: ClassifierSuite,
ScorerSuite, DetectorSuite, TransformSuite and StatisticSuite. Each test below names the
suite and the test it reproduces (same inputs, same expected label or score).
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime

import numpy as np
import pytest

from rolloutlab.judges import judge
from rolloutlab.judges.kayenta import (
    MetricOutcome,
    classify,
    cles,
    interval_undefined,
    iqr_outliers,
    judgment_times_s,
    mean_ratio,
    metric_config,
    preprocess,
    score,
    score_class,
)
from rolloutlab.sources.simulate import simulate
from rolloutlab.specs import KayentaSettings, Spec

# -- ClassifierSuite data ------------------------------------------------------------------

NEAR_10_A = [
    9.7767343120109462, 10.587071850477695, 7.8375506388901766, 9.3243326886113884,
    8.3774505409784421, 8.9359264399606282, 8.2707663324728511, 9.7484308126716925,
    11.623746715547156, 9.2753442679633942, 8.1538047749171518, 10.562020975754294,
    13.498135575451835, 11.054419256110332, 6.9538903590055092, 12.521008342195479,
    9.0216358603546443, 4.9234856699531662, 11.251360203607172, 11.598449508040337,
    8.435232204668182, 11.110228516867279, 10.70063380164755, 8.9212773652115249,
    10.086167067942661, 11.42107515483087, 9.3792347813644952, 7.7980320148552593,
    10.62339807275746, 11.909642062063739,
]  # fmt: skip
NEAR_10_B = [
    11.1453586774086, 9.9618059885597017, 7.068574306369829, 7.3012661810483657,
    9.7944630265656727, 9.6037918603687302, 6.1867793350339388, 12.345599159550174,
    10.371891733859533, 8.6094300785016724, 9.913162673361084, 10.361375299003466,
    14.206800387518818, 10.946153754753301, 10.215876627044048, 11.739760899484603,
    10.907627468626439, 12.823353694464775, 8.1018609771732137, 8.4981616408804932,
    12.113441374697231, 13.272210809932028, 10.114579381663297, 6.9463958767978067,
    6.2105278541727778, 10.160401684903775, 8.3457712066455461, 8.383822063895833,
    7.0020205070083765, 10.755757401808442,
]  # fmt: skip
NEAR_20_A = [
    20.878412601720026, 21.78550581191622, 19.70828084717019, 15.859946903461562,
    19.510058772176841, 19.392005525270303, 22.926528314912101, 17.156530276709894,
    18.655117916226171, 23.422607911610392, 24.055817684156644, 22.62689958516501,
    21.979472967817678, 21.659318607218694, 20.067707574072426, 22.119570836305414,
    16.44037132663307, 21.559622826341268, 21.000181443489218, 17.779369411412663,
    17.806006358943584, 18.537200618386109, 20.555550300210797, 19.552928184468378,
    21.771118944087092, 21.809622806176627, 20.961762909905271, 20.977571577503021,
    19.106303205498794, 16.976918966987078,
]  # fmt: skip
NEAR_20_B = [
    20.758113589510348, 22.802059629464559, 20.612340363492208, 20.973274654749986,
    23.469237330498622, 21.53133988954805, 21.767353687439805, 18.308050730374301,
    19.062145167827566, 25.879498436001779, 18.982629726336128, 19.387920182269266,
    18.995398251246982, 24.228420230932805, 20.050985172694688, 18.2340451091756,
    17.870515494460435, 23.058103863806618, 18.400259567501134, 16.971352091177167,
    19.467529066052151, 17.90465423342031, 17.553948617825831, 16.104611843907193,
    24.38171081433039, 15.919294339922635, 20.479409626304697, 19.08307201492406,
    17.455788050722866, 18.853826823235142,
]  # fmt: skip
LARGE_EXPERIMENT = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.6666666666666572, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 3.7037037037036811, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5625000000000142,
    0.0, 0.0, 0.0, 0.0, 3.3333333333333428, 0.0, 1.7543859649122737, 0.0,
    1.8518518518518476, 0.0, 0.0, 1.8518518518518476, 0.0, 0.0, 1.5151515151515156,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.7857142857142776,
    1.3333333333333286, 0.0, 3.1250000000000142, 1.9607843137255117,
    1.4492753623188293, 2.4390243902438868, 1.6393442622950687, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 1.6129032258064484, 1.9607843137255117, 1.5873015873015817, 0.0,
    0.0, 2.8169014084507182, 0.0, 0.0, 3.0303030303030454, 0.0, 0.0,
    3.3898305084745743, 0.0, 0.0, 1.234567901234584, 0.0, 0.0, 0.0, 0.0,
    1.7241379310344769, 0.0, 0.0, 0.0, 0.0, 1.6949152542372872, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 1.470588235294116, 0.0, 0.0, 1.3698630136986196,
    3.225806451612911, 1.7543859649122879, 3.4482758620689538, 0.0,
    3.3333333333333428, 0.0, 0.0, 0.0, 1.818181818181813, 0.0, 0.0,
    1.4285714285714448, 0.0, 0.0, 1.8867924528301927, 2.0000000000000284, 0.0, 0.0,
    0.0, 2.985074626865682, 0.0, 0.0, 1.6666666666666714, 0.0, 0.0, 1.5625,
    1.9230769230769198, 0.0, 1.8518518518518619, 0.0, 2.7027027027027088, 0.0, 0.0,
    0.0, 1.3513513513513544, 0.0, 1.818181818181813, 0.0, 1.6666666666666572, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.818181818181813, 0.0, 1.4285714285714164, 0.0,
    0.0, 4.1095890410959015, 0.0, 0.0, 0.0, 1.8518518518518619, 0.0, 0.0,
    1.8518518518518476, 1.3888888888888857, 0.0, 0.0, 0.0, 0.0, 1.8867924528301785,
    1.4285714285714164, 0.0, 0.0, 1.5625, 1.8867924528301927, 0.0, 0.0, 0.0, 0.0,
    2.040816326530603, 1.818181818181813, 0.0, 0.0, 1.6393442622950687, 0.0,
    1.7241379310344769, 1.5151515151515156, 2.564102564102555, 0.0, 0.0, 0.0, 0.0,
    5.5555555555555571, 0.0, 0.0, 4.0816326530612059, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 3.5714285714285836, 0.0, 2.040816326530603, 3.1746031746031633, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
]  # fmt: skip
LARGE_CONTROL = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5625000000000142, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.3888888888888857, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 1.5384615384615614, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.4925373134328339, 0.0, 0.0, 0.0,
    1.6949152542373014, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 1.470588235294116, 0.0, 0.0, 0.0, 0.0, 1.7543859649122879, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 1.8518518518518619, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.6393442622950687, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 1.7241379310344769, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5873015873015817,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    1.4925373134328339, 0.0, 0.0, 0.0, 3.1249999999999858, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 1.4925373134328339, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    2.9850746268656536, 0.0, 2.5000000000000284, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    1.7857142857142776, 0.0, 0.0, 0.0,
]  # fmt: skip
CLES_PASS_EXPERIMENT = [
    0.00000000e+00, 0.00000000e+00, 1.46580998e-04, 0.00000000e+00,
    0.00000000e+00, 0.00000000e+00, 7.94701987e-05, 0.00000000e+00,
    0.00000000e+00, 0.00000000e+00, 2.68889486e-05, 0.00000000e+00,
    0.00000000e+00, 2.64935753e-05, 0.00000000e+00, 0.00000000e+00,
    0.00000000e+00, 2.61608895e-05, 1.27824931e-04, 0.00000000e+00,
    0.00000000e+00, 0.00000000e+00, 2.54511211e-05, 2.58665287e-05,
    7.63339355e-05, 0.00000000e+00, 2.54239443e-05, 0.00000000e+00,
    0.00000000e+00, 0.00000000e+00, 2.61001201e-05, 5.20101940e-05,
    0.00000000e+00, 2.64452319e-05, 5.27551370e-05, 7.83719533e-05,
    5.19467027e-05, 2.58344528e-05, 2.58899676e-05, 0.00000000e+00,
    2.59497613e-05, 2.57938043e-05, 7.78553448e-05, 2.60593110e-05,
    2.61001201e-05, 0.00000000e+00, 0.00000000e+00, 2.59349551e-05,
    2.60559160e-05, 0.00000000e+00, 0.00000000e+00, 0.00000000e+00,
    0.00000000e+00, 0.00000000e+00, 0.00000000e+00, 2.58819267e-05,
    0.00000000e+00, 2.58825965e-05, 2.57572635e-05, 2.56877906e-05,
]  # fmt: skip
CLES_PASS_CONTROL = [
    0.00000000e+00, 0.00000000e+00, 0.00000000e+00, 0.00000000e+00,
    0.00000000e+00, 0.00000000e+00, 0.00000000e+00, 0.00000000e+00,
    2.91528191e-05, 0.00000000e+00, 0.00000000e+00, 0.00000000e+00,
    2.98284862e-05, 5.99916012e-05, 0.00000000e+00, 5.92276712e-05,
    0.00000000e+00, 2.98053709e-05, 0.00000000e+00, 2.97309350e-05,
    5.92153960e-05, 0.00000000e+00, 0.00000000e+00, 0.00000000e+00,
    2.92800047e-05, 0.00000000e+00, 2.94550810e-05, 0.00000000e+00,
    0.00000000e+00, 0.00000000e+00, 5.83958656e-05, 0.00000000e+00,
    0.00000000e+00, 0.00000000e+00, 0.00000000e+00, 0.00000000e+00,
    0.00000000e+00, 0.00000000e+00, 0.00000000e+00, 0.00000000e+00,
    2.88600289e-05, 2.90334756e-05, 2.91740817e-05, 0.00000000e+00,
    0.00000000e+00, 0.00000000e+00, 0.00000000e+00, 0.00000000e+00,
    0.00000000e+00, 2.92765758e-05, 0.00000000e+00, 0.00000000e+00,
    0.00000000e+00, 0.00000000e+00, 0.00000000e+00, 2.94637596e-05,
    5.89136326e-05, 0.00000000e+00, 0.00000000e+00, 0.00000000e+00,
]  # fmt: skip
CLES_HIGH_EXPERIMENT = [
    0.00689808, 0.00568664, 0.00680876, 0.00642045, 0.00561825,
    0.00472294, 0.00398378, 0.00392403, 0.00421201, 0.0047529 ,
    0.00460853, 0.00439888, 0.00561875, 0.01998866, 0.0124369 ,
    0.00624391, 0.00444361, 0.00442059, 0.00372095, 0.00540736,
    0.00715402, 0.00425974, 0.00414409, 0.01172436, 0.0125959 ,
    0.00371891, 0.00429855, 0.00369876, 0.00325709, 0.00415943,
    0.00371754, 0.00445212, 0.00521721, 0.00443938, 0.00380859,
    0.01602997, 0.00788885, 0.0038155 , 0.00326921, 0.00336928,
    0.00365917, 0.00333869, 0.00427639, 0.00355911, 0.00381224,
    0.00360057, 0.00349305, 0.00401164, 0.00351947, 0.00356299,
    0.003407  , 0.00414397, 0.00393346, 0.00413318, 0.00359041,
    0.00366314, 0.00309383, 0.00383733, 0.00363324, 0.00280674,
]  # fmt: skip
CLES_HIGH_CONTROL = [
    0.00081956, 0.00239282, 0.00133685, 0.00094917, 0.00029518,
    0.00035344, 0.00048194, 0.00034893, 0.0003202 , 0.00079814,
    0.00090881, 0.00072599, 0.00037819, 0.00038286, 0.00057604,
    0.00064821, 0.00032194, 0.0002245 , 0.00025202, 0.00071997,
    0.00022721, 0.00042578, 0.00042496, 0.00045613, 0.00037072,
    0.0003317 , 0.00032889, 0.00032749, 0.00036093, 0.00029285,
    0.00038401, 0.00044467, 0.00071086, 0.00036692, 0.00052079,
    0.00074974, 0.00128791, 0.00062046, 0.00086345, 0.00118563,
    0.00103379, 0.00028913, 0.00057628, 0.00057943, 0.00048735,
    0.00029409, 0.0002005 , 0.00016612, 0.00089312, 0.00059367,
    0.00061706, 0.00163313, 0.00097784, 0.00029305, 0.00058839,
    0.00085212, 0.00048298, 0.00035546, 0.00025866, 0.00038767,
]  # fmt: skip
CLES_LOW_EXPERIMENT = [
    24.24693907, 26.13330099, 22.50056744, 24.36646841, 23.19935673,
    19.43801304, 20.99654102, 18.90793651, 21.31949881, 21.83528381,
    21.64211206, 23.13365968, 21.09163134, 19.45540615, 20.74783158,
    22.25527831, 19.82051791, 20.9865487 , 19.94450026, 23.2904056 ,
    18.18408424, 22.13843542, 19.42896044, 19.84140464, 23.91557662,
    21.00981557, 21.8594633 , 23.11630163, 22.95700392, 17.80045135,
]  # fmt: skip
CLES_LOW_CONTROL = [
    25.09626848, 26.15032198, 24.88431438, 24.18870163, 22.14684987,
    28.01743443, 21.29910501, 27.24688773, 28.64187535, 27.03504445,
    24.67888311, 22.35137878, 27.41640397, 26.00225548, 23.02118534,
    25.99647292, 22.77446912, 25.56704719, 25.57025827, 21.2721602 ,
    23.12987357, 24.59111604, 27.48865016, 27.21967755, 23.5951111 ,
    22.5429607 , 25.83015564, 23.31965305, 24.3911644 , 25.11468194,
]  # fmt: skip
SMALL_HIGH = ([1.0, 2.2, 1.1, 2.5, 3.0], [20.0, 22.0, 21.0, 25.0, 30.0])  # (control, experiment)


def suite(tolerance: float = 0.10, confidence: float = 0.95, **settings) -> KayentaSettings:
    """The classifier the suite builds: ``MannWhitneyClassifier(tolerance, confLevel, ...)``.

    ``effectSizeThresholds = (d, i)`` is ``allowed_decrease=d, allowed_increase=i`` and
    ``criticalThresholds`` likewise ``critical_decrease``/``critical_increase``.
    """
    return KayentaSettings(effect_size_rule=tolerance, confidence=confidence, **settings)


# ClassifierSuite: test name -> (control, experiment, settings, direction, expected label)
CLASSIFIER_SUITE = {
    "Mann-Whitney Classifier Test: Pass Metric": (NEAR_10_B, NEAR_10_A, suite(), "either", "Pass"),
    "Mann-Whitney Classifier Test: High Metric": (NEAR_10_B, NEAR_20_A, suite(), "either", "High"),
    "Mann-Whitney Classifier Test: Low Metric": (NEAR_20_B, NEAR_10_A, suite(), "either", "Low"),
    "Mann-Whitney Classifier Directional Test: Increase": (
        NEAR_20_B, NEAR_10_A, suite(), "increase", "Pass"
    ),
    "Mann-Whitney Classifier Directional Test: Decrease": (
        NEAR_10_B, NEAR_20_A, suite(), "decrease", "Pass"
    ),
    "Mann-Whitney Classifier Directional Test: High Metric": (
        NEAR_10_B, NEAR_20_A, suite(), "increase", "High"
    ),
    "Mann-Whitney Classifier Directional Test: Low Metric": (
        NEAR_20_B, NEAR_10_A, suite(), "decrease", "Low"
    ),
    "Mann-Whitney Classifier Test: High Metric (Large Input)": (
        LARGE_CONTROL, LARGE_EXPERIMENT, suite(), "either", "High"
    ),
    "Mann-Whitney Classifier Test - Mean Ratio Effect Size: High": (
        *SMALL_HIGH, suite(allowed_decrease=0.8, allowed_increase=1.2), "either", "High"
    ),
    "Mann-Whitney Classifier Test - Mean Ratio Effect Size: Low": (
        NEAR_20_B, NEAR_10_A, suite(allowed_decrease=0.8, allowed_increase=1.2), "decrease", "Low"
    ),
    "Mann-Whitney Classifier Test - Mean Ratio Effect Size: Pass": (
        [20.0, 22.0, 21.0, 25.0, 30.0],
        [10.0, 12.2, 10.1, 12.5, 23.0],
        suite(allowed_decrease=0.5, allowed_increase=1.0),
        "either",
        "Pass",
    ),
    "Mann-Whitney Classifier Test - Mean Ratio Effect Size: Pass (Large Input)": (
        LARGE_CONTROL,
        LARGE_EXPERIMENT,
        suite(allowed_decrease=1.0, allowed_increase=5.0),
        "either",
        "Pass",
    ),
    "Mann-Whitney Classifier Test - CLES Effect Size: Pass": (
        CLES_PASS_CONTROL,
        CLES_PASS_EXPERIMENT,
        suite(0.20, 0.98, allowed_decrease=0.5, allowed_increase=0.8, effect_size_measure="cles"),
        "either",
        "Pass",
    ),
    "Mann-Whitney Classifier Test - CLES Effect Size: High": (
        CLES_HIGH_CONTROL,
        CLES_HIGH_EXPERIMENT,
        suite(0.20, 0.98, allowed_decrease=0.2, allowed_increase=0.8, effect_size_measure="cles"),
        "either",
        "High",
    ),
    "Mann-Whitney Classifier Test - CLES Effect Size: Low": (
        CLES_LOW_CONTROL,
        CLES_LOW_EXPERIMENT,
        suite(0.20, 0.98, allowed_decrease=0.2, allowed_increase=0.8, effect_size_measure="cles"),
        "either",
        "Low",
    ),
    "Mann-Whitney Tied Observations": ([1.0, 1.0], [1.0, 1.0, 1.0], suite(), "decrease", "Pass"),
    "Mann-Whitney Identical Populations": (
        [5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0], suite(), "decrease", "Pass"
    ),
    "Mann-Whitney Leading Zero Identical Population": (
        [1.0] * 5, [0.0, 1.0, 1.0, 1.0, 1.0], suite(), "decrease", "Pass"
    ),
    "Mann-Whitney Missing Experiment Data": (
        [1.0, 2.0, 3.0, 4.0, 5.0], [], suite(), "decrease", "Nodata"
    ),
    "Mann-Whitney Missing Experiment Data with NaN Replacement": (
        [1.0, 2.0, 3.0, 4.0, 5.0], [], suite(nan_strategy="replace"), "decrease", "Pass"
    ),
    "Mann-Whitney Majority Tied Observations": (
        [1.0] * 5, [1.0, 1.0, 1.0, 1.0, 10.0], suite(), "either", "Pass"
    ),
    "Mann-Whitney Tied Ranks": ([1.0] * 5, [10.0] * 5, suite(), "either", "High"),
    "Mann-Whitney Tied Ranks With Zeros": ([0.0] * 5, [10.0] * 5, suite(), "either", "High"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CLASSIFIER_SUITE), ids=list(CLASSIFIER_SUITE))
def test_classifier_suite(case):
    """ClassifierSuite: each named test's inputs give its asserted label (and not critical)."""
    control, experiment, settings, direction, expected = CLASSIFIER_SUITE[case]
    result = classify(control, experiment, settings, direction=direction)
    assert result.label == expected
    assert not result.critical


# ClassifierSuite, critical metrics: test name -> (control, experiment, settings, label, critical)
CRITICAL_SUITE = {
    "Mann-Whitney Classifier Test - Critical Effect Size: Critical High": (
        *SMALL_HIGH, suite(critical_decrease=1.0, critical_increase=1.2), "High", True
    ),
    "Mann-Whitney Classifier Test - Critical Effect Size: Critical Low": (
        [10.0, 20.2, 10.1, 20.5, 30.0],
        [2.0, 2.0, 2.0, 2.0, 3.0],
        suite(critical_decrease=1.2, critical_increase=1.0),
        "Low",
        True,
    ),
    "Mann-Whitney Classifier Test - Critical Effect Size: High": (
        *SMALL_HIGH,
        suite(allowed_decrease=1.0, allowed_increase=5.0, critical_decrease=1.0,
              critical_increase=13.0),
        "High",
        False,
    ),
    "Mann-Whitney Classifier Test - Critical Effect Size: Pass": (
        *SMALL_HIGH,
        suite(allowed_decrease=1.0, allowed_increase=13.0, critical_decrease=1.0,
              critical_increase=15.0),
        "Pass",
        False,
    ),
    "Mann-Whitney Classifier Test - Critical Effect Size: Critical High (Default Thresholds)": (
        *SMALL_HIGH, suite(), "High", True
    ),
    "Mann-Whitney Missing Experiment Data: Critical Metric": (
        [1.0, 2.0, 3.0, 4.0, 5.0], [], suite(), "Nodata", True
    ),
    "Mann-Whitney Zero Mean: Critical Metric": (
        [0.0] * 10,
        [0.05000000074505806, 0.05000000074505806, 0.01666666753590107,
         0.01666666753590107, 0.01666666753590107, 0.05000000074505806,
         0.03333333507180214, 0.05000000260770321, 0.05000000260770321,
         0.13333333656191826],
        suite(critical_decrease=0.8, critical_increase=1.2, nan_strategy="replace"),
        "High",
        True,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CRITICAL_SUITE), ids=list(CRITICAL_SUITE))
def test_classifier_suite_critical_metrics(case):
    """ClassifierSuite: critical metrics fail the canary only beyond criticalIncrease/Decrease."""
    control, experiment, settings, expected, fails_canary = CRITICAL_SUITE[case]
    result = classify(control, experiment, settings, critical=True)
    assert (result.label, result.critical) == (expected, fails_canary)


def test_classifier_suite_zero_means():
    """ClassifierSuite "Mann-Whitney Zero Mean: High/Low Metric with Effect Size" and
    "Zero Mean: Pass Metric": an effect size that cannot be computed is ignored."""
    settings = suite(allowed_decrease=0.8, allowed_increase=1.2)
    high = classify([0.0] * 5, [54.9, 54.5, 55.1, 55.6, 57.4], settings)
    low = classify([54.9, 54.5, 55.1, 55.6, 57.4], [0.0] * 5, settings)
    same = classify([0.0] * 5, [0.0] * 5, settings)
    assert high.label == "High" and math.isnan(high.deviation)
    assert low.label == "Low" and math.isnan(low.deviation)
    assert same.label == "Pass" and same.deviation == 1.0


def test_classifier_suite_missing_data_reason():
    """ClassifierSuite "Mann-Whitney Missing Data: Reason String"."""
    assert classify([], [], suite(), direction="decrease", critical=True).reason


def test_must_have_data():
    """NodataFailMetric: a non-critical metric that must have data and has none."""
    assert classify([1.0], [], must_have_data=True).label == "NodataFailMetric"
    assert classify([1.0], [], must_have_data=True, critical=True).label == "Nodata"


def test_a_failing_test_is_an_error_label():
    """NetflixACAJudge labels a metric Error when the Mann-Whitney test throws."""
    result = classify(NEAR_10_B, NEAR_20_A, KayentaSettings(confidence=1.0))
    assert result.label == "Error" and "Metric Classification Failed" in result.reason


def test_classification_numbers_are_the_mann_whitney_ones():
    result = classify(NEAR_10_B, NEAR_20_A, suite())
    low, high = result.ci
    assert low > 0.1 * abs(result.estimate)  # High: the interval clears the tolerance
    assert result.estimate == pytest.approx(np.median(np.subtract.outer(NEAR_20_A, NEAR_10_B)), 0.1)
    assert result.deviation == pytest.approx(np.mean(NEAR_20_A) / np.mean(NEAR_10_B))


# -- ScorerSuite ------------------------------------------------------------------------------


def outcome(label: str, group: str = "test-group", critical: bool = False) -> MetricOutcome:
    return MetricOutcome(label, (group,), critical)


SCORER_SUITE = {
    "Weighted Sum Group Scorer: Single Metric Pass": ([outcome("Pass")], {}, 100.0),
    "Weighted Sum Group Scorer: Single Metric Fail": ([outcome("High")], {}, 0.0),
    "Weighted Sum Group Scorer: Single group Nodata": ([outcome("Nodata")], {}, 0.0),
    "Weighted Sum Group Scorer: Two Groups, one Pass, one Nodata": (
        [outcome("Pass", "pass"), outcome("Pass", "pass"), outcome("Nodata", "nodata")], {}, 100.0
    ),
    "Weighted Sum Group Scorer: One Group, Two Metrics": (
        [outcome("Pass"), outcome("High")], {}, 50.0
    ),
    "Weighted Sum Group Scorer: One Group, Three Metrics": (
        [outcome("Pass"), outcome("High"), outcome("Low")], {}, 33.33
    ),
    "Weighted Sum Group Scorer: Two Groups, Three Metrics": (
        [outcome("Pass", "group-1"), outcome("Pass", "group-1"), outcome("High", "group-2")],
        {"group-1": 75.0, "group-2": 25.0},
        75.0,
    ),
    "Weighted Sum Group Scorer: Two Groups, Three Metrics (Equal Weight)": (
        [outcome("Pass", "group-1"), outcome("High", "group-1"), outcome("High", "group-2")],
        {"group-1": 50.0, "group-2": 50.0},
        25.0,
    ),
    "Weighted Sum Group Scorer: Two Groups, Three Metrics (Equal Weight), one NoData": (
        [outcome("Pass", "group-1"), outcome("Nodata", "group-1"), outcome("High", "group-2")],
        {"group-1": 50.0, "group-2": 50.0},
        50.0,
    ),
    "Weighted Sum Group Scorer: Two Metrics, one good (normal), one fail (critical)": (
        [outcome("Pass"), outcome("High", critical=True)], {}, 0.0
    ),
    "Weighted Sum Group Scorer: Two Metrics, one low (normal), one good (critical)": (
        [outcome("Low"), outcome("Pass", critical=True)], {}, 50.0
    ),
    "Weighted Sum Group Scorer: Two Metrics, one good (normal), one nodata (critical)": (
        [outcome("Pass"), outcome("Nodata", critical=True)], {}, 0.0
    ),
    "Weighted Sum Group Scorer: Two Groups (Unequal Weight), Four Metrics": (
        [outcome("High", "group1"), outcome("Low", "group1"), outcome("Pass", "group1"),
         outcome("High", "group2")],
        {"group1": 15.0, "group2": 85.0},
        5.0,
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SCORER_SUITE), ids=list(SCORER_SUITE))
def test_scorer_suite(case):
    """ScorerSuite: each named test's labels and group weights give its summary score."""
    results, weights, expected = SCORER_SUITE[case]
    assert score(results, weights).summary == expected


def test_scorer_suite_group_scores():
    """ScorerSuite "Single group Nodata" and "Two Groups, one Pass, one Nodata": group scores."""
    assert score([outcome("Nodata", "nodata")]).groups == {"nodata": 0.0}
    two = score([outcome("Pass", "pass"), outcome("Pass", "pass"), outcome("Nodata", "nodata")])
    assert sorted(two.groups.values()) == [0.0, 100.0]


def test_nodata_fail_metric_counts_against_the_group():
    assert score([outcome("Pass"), outcome("NodataFailMetric")]).summary == 50.0


def test_score_classes():
    settings = KayentaSettings()
    assert [score_class(s, settings) for s in (95, 94.99, 75, 74.99)] == [
        "Pass",
        "Marginal",
        "Marginal",
        "Fail",
    ]


# -- DetectorSuite, TransformSuite, StatisticSuite -------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "outliers"),
    [
        ("IQR Detection", [21.0, 23.0, 24.0, 25.0, 50.0, 29.0, 23.0, 21.0], [4]),
        ("IQR Detect Two Sided", [1.0, 1.0, 1.0, 5.0, -1.0, -1.0, -1.0, -5.0], [3, 7]),
        ("IQR Empty Data", [], []),
        (
            "IQR NIST Test",
            [30, 171, 184, 201, 212, 250, 265, 270, 272, 289, 305, 306, 322, 322, 336, 346,
             351, 370, 390, 404, 409, 411, 436, 437, 439, 441, 444, 448, 451, 453, 470, 480,
             482, 487, 494, 495, 499, 503, 514, 521, 522, 527, 548, 550, 559, 560, 570, 572,
             574, 578, 585, 592, 592, 607, 616, 618, 621, 629, 637, 638, 640, 656, 668, 707,
             709, 719, 737, 739, 752, 758, 766, 792, 792, 794, 802, 818, 830, 832, 843, 858,
             860, 869, 918, 925, 953, 991, 1000, 1005, 1068, 1441],
            [89],
        ),
    ],
)  # fmt: skip
def test_detector_suite(name, data, outliers):
    """DetectorSuite: IQRDetector(factor = 1.5) flags exactly these positions."""
    assert np.flatnonzero(iqr_outliers(data, 1.5)).tolist() == outliers


def test_transform_suite():
    """TransformSuite "Remove Single NaN", "Remove Multiple NaN", "Replace NANs"."""
    remove, replace = KayentaSettings(), KayentaSettings(nan_strategy="replace")
    assert preprocess([0.0, 1.0, math.nan, 1.0, 0.0], remove).tolist() == [0.0, 1.0, 1.0, 0.0]
    assert preprocess([math.nan] * 3, remove).tolist() == []
    assert preprocess([math.nan, 10.1, 20.2, 30.3, math.nan, 40.4], replace).tolist() == [
        0.0,
        10.1,
        20.2,
        30.3,
        0.0,
        40.4,
    ]


def test_outlier_removal_uses_the_widened_fences():
    """NetflixACAJudge removes outliers with IQRDetector(outlierFactor, reduceSensitivity)."""
    settings = KayentaSettings(remove_outliers=True, outlier_factor=1.5)
    data = [21.0, 23.0, 24.0, 25.0, 50.0, 29.0, 23.0, 21.0]
    # the 99th percentile (49.37) is below 50, so 50 still goes
    assert preprocess(data, settings).tolist() == [21.0, 23.0, 24.0, 25.0, 29.0, 23.0, 21.0]


def test_statistic_suite_effect_sizes():
    """StatisticSuite "Effect Size: Mean Ratio (...)" and "CLES Effect Size: (...)"."""
    assert mean_ratio([1.0] * 5, [1.0] * 5) == 1.0
    assert mean_ratio([1.0] * 5, [10.0] * 5) == 10.0
    assert mean_ratio([100.0] * 5, [10.0] * 5) == 0.1
    assert math.isnan(mean_ratio([0.0] * 5, [10.0] * 5))
    assert cles([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]) == 0.5
    no_overlap = (
        [25.31531073, 25.19450817, 24.6288846, 24.37991861, 26.40999244,
         25.28524759, 24.99788745, 26.13841676, 22.93604649, 24.56817832],
        [2.27776335, 2.61149434, 3.26894105, 2.91672701, 1.40656921,
         2.18292082, 3.47901292, 3.00034118, 3.02402043, 4.69912745],
    )  # fmt: skip
    assert cles(*no_overlap) == 0.0
    high = (
        [24.69397578, 25.37120574, 25.86186148, 26.93804252, 22.72232309,
         24.15894084, 24.80842752, 26.07830794, 27.35323988, 23.25110886,
         24.65909111, 23.88299016, 21.34817847, 26.33198082, 23.39498829,
         26.6734461, 25.33769589, 23.92348759, 25.29740715, 24.21381887,
         28.1697053, 22.2271772, 27.16612837, 25.16639243, 26.85955896,
         27.13421926, 25.43350074, 26.32130314, 23.8854011, 27.86180318],
        [29.17644856, 25.16947646, 25.88467948, 29.4900454, 27.05622757,
         26.13307864, 27.2711558, 26.69139944, 29.05412377, 26.39818697,
         26.68312641, 24.99600187, 27.99524816, 22.57278291, 23.72798196,
         25.82821505, 28.26624521, 28.02370228, 24.1792213, 26.02914828,
         25.90970275, 31.18337461, 27.44254942, 29.93347686, 26.70848069,
         28.12191913, 27.39257837, 30.17636627, 29.60240485, 30.10635388],
    )  # fmt: skip
    assert cles(*high) == pytest.approx(0.771, abs=0.001)
    low = (
        [23.15322873, 22.09179077, 26.56410603, 23.0971542, 24.26372276,
         25.6461273, 29.42730472, 22.08630097, 29.15257054, 25.8096766,
         24.62191338, 23.67398895, 23.63946085, 26.44684325, 25.76230914,
         25.41279862, 22.64005862, 24.58898152, 25.01968457, 25.03695883,
         23.79864705, 26.60180151, 25.99405034, 22.46726084, 28.31843786,
         24.30152484, 22.83713467, 21.92380184, 23.44735223, 29.15676219],
        [22.58442682, 18.83161858, 22.34282944, 18.52177725, 19.41399147,
         21.77120485, 24.33796385, 22.16390531, 23.781802, 21.38514296,
         22.2205035, 22.06152361, 21.30313392, 21.59652134, 22.38394223,
         24.68882792, 20.58916439, 21.03137302, 22.26213957, 23.76485986,
         20.56271226, 24.56567102, 19.86055958, 22.18967677, 20.31475409,
         19.2634656, 24.60283585, 20.41729998, 20.62069798, 22.53448767],
    )  # fmt: skip
    assert cles(*low) == pytest.approx(0.12)


# -- the judge: Spinnaker's schedule on simulated rollouts ------------------------------------

START = datetime(2026, 1, 12, 10, 0, tzinfo=UTC)
#: Spinnaker's schedule with a 30-minute analysis interval (unset, the lifetime is judged once).
EVERY_30M = Spec(kayenta=KayentaSettings(judgment_interval_s=1800))


def minutes(m: int) -> datetime:
    return START.replace(hour=10 + m // 60, minute=m % 60)


def test_error_regression_rolls_back_at_the_first_judgment():
    verdict = judge(simulate("error-regression", seed=1), EVERY_30M, judge="kayenta")
    assert (verdict.decision, verdict.decided_at) == ("rollback", minutes(30))
    rate = verdict.metric("request-success-rate")
    assert (rate.classification, rate.details["label"]) == ("fail", "High")
    assert verdict.ticks[-1].state["score"] == 0.0
    assert "<= marginal 75" in verdict.reason


def test_healthy_rollout_promotes_at_the_end_of_the_lifetime():
    verdict = judge(simulate("healthy", seed=1), EVERY_30M, judge="kayenta")
    assert (verdict.decision, verdict.decided_at) == ("promote", minutes(180))
    judged = [t for t in verdict.ticks if t.state["judged"]]
    assert [t.timestamp for t in judged] == [minutes(m) for m in range(30, 181, 30)]
    assert all(t.state["score"] == 100.0 for t in judged)
    assert verdict.ticks[0].state == {"score": None, "judged": False}


def test_lifetime_and_judgment_interval_are_configurable():
    spec = Spec(kayenta=KayentaSettings(judgment_interval_s=1200, lifetime_s=3600))
    verdict = judge(simulate("healthy", seed=1), spec, judge="kayenta")
    judged = [t.timestamp for t in verdict.ticks if t.state["judged"]]
    assert judged == [minutes(20), minutes(40), minutes(60)]
    assert (verdict.decision, verdict.decided_at) == ("promote", minutes(60))


def test_a_final_score_below_pass_rolls_back():
    # one of two metrics High (not critical): score 50 <= 75 stops at the first judgment;
    # with a marginal score of 40 the canary runs to the end and fails below pass
    metrics = [
        {"name": "request-success-rate", "critical": False},
        {"name": "request-duration", "critical": False},
    ]
    spec = Spec().replace(metrics=metrics, kayenta={"marginalScore": 40})
    verdict = judge(simulate("latency-regression", seed=1), spec, judge="kayenta")
    assert (verdict.decision, verdict.decided_at) == ("rollback", minutes(180))
    assert verdict.ticks[-1].state["score"] == 50.0
    assert "final Kayenta score 50 < pass 95" in verdict.reason


def test_an_error_is_inconclusive_and_left_out_of_the_score():
    spec = Spec(kayenta=KayentaSettings(confidence=1.0))  # the parser refuses 1, Spec does not
    verdict = judge(simulate("error-regression", seed=1), spec, judge="kayenta")
    rate = verdict.metric("request-success-rate")
    assert (rate.classification, rate.details["label"]) == ("inconclusive", "Error")
    # Kayenta scores only Pass/High/Low/NodataFailMetric: a group of errors counts as 100
    assert verdict.decision == "promote"


def test_latency_series_is_the_per_step_quantile():
    verdict = judge(simulate("latency-regression", seed=1), EVERY_30M, judge="kayenta")
    duration = verdict.metric("request-duration")
    assert duration.details["label"] == "High"
    assert duration.unit == "ms" and duration.estimate > 0
    assert duration.details["n_control"] == duration.details["n_experiment"] == 30


# -- NetflixACAJudge's defaults and Spinnaker's schedule -------------------------------------
# spinnaker/kayenta at a69573be9d8fededacf80817e4151a2c8df41276:
# kayenta-judge/src/main/scala/com/netflix/kayenta/judge/NetflixACAJudge.scala
# (classifyMetric: direction defaults to "either", critical and mustHaveData to false) and
# kayenta-standalone-canary-analysis/src/main/java/com/netflix/kayenta/
# standalonecanaryanalysis/orca/stage/SetupAndExecuteCanariesStage.java
# (calculateAnalysisInterval: no analysisIntervalMins, 0, or one longer than the lifetime
# is the lifetime; numberOfJudgements = lifetime / interval, judgment i at i * interval).


def unset(spec: Spec) -> Spec:
    """``spec`` with each metric's direction and criticality left unset (None)."""
    metrics = tuple(dataclasses.replace(m, direction=None, critical=None) for m in spec.metrics)
    return dataclasses.replace(spec, metrics=metrics)


def test_unset_direction_and_criticality_are_netflix_defaults():
    metric = Spec().metrics[0]
    assert metric_config(dataclasses.replace(metric, direction=None, critical=None)) == (
        "either",
        False,
    )
    explicit = dataclasses.replace(metric, direction="increase", critical=True)
    assert metric_config(explicit) == ("increase", True)
    # the classifier's own defaults are the same
    lower = classify([10.0, 11, 12, 11, 10, 12], [1.0, 2, 1, 2, 1, 2])
    assert (lower.label, lower.critical) == ("Low", False)


def test_a_non_critical_high_metric_lowers_the_score_instead_of_zeroing_it():
    recording = simulate("error-regression", seed=1)
    critical = judge(recording, judge="kayenta")  # the built-in metrics are critical
    default = judge(recording, unset(Spec()), judge="kayenta")
    assert critical.ticks[-1].state["score"] == 0.0
    rate = default.metric("request-success-rate")
    assert (rate.details["label"], rate.details["fails_canary"], rate.critical) == (
        "High",
        False,
        False,
    )
    assert default.ticks[-1].state["score"] == 50.0  # one of two metrics High
    assert default.decision == "rollback"  # 50 <= marginal 75


def test_an_unset_direction_flags_an_improvement_too():
    # roles swapped: the "experiment" is the healthy primary, whose errors are lower
    recording = simulate("error-regression", seed=1)
    swapped = Spec(control="canary", treatment="primary")
    one_sided = judge(recording, swapped, judge="kayenta")
    either = judge(recording, unset(swapped), judge="kayenta")
    assert one_sided.metric("request-success-rate").details["label"] == "Pass"
    assert either.metric("request-success-rate").details["label"] == "Low"


@pytest.mark.parametrize(
    ("lifetime", "interval", "times"),
    [
        (180, None, (180,)),  # no analysisIntervalMins: the whole lifetime once
        (180, 0, (180,)),
        (180, 240, (180,)),  # longer than the lifetime
        (180, 60, (60, 120, 180)),
        (100, 30, (30, 60, 90)),  # 100 / 30 = 3 judgments: none at minute 100
    ],
)
def test_judgment_times(lifetime, interval, times):
    seconds = None if interval is None else interval * 60.0
    assert judgment_times_s(lifetime * 60.0, seconds) == tuple(t * 60.0 for t in times)


def test_without_an_analysis_interval_the_lifetime_is_one_judgment():
    spec = Spec(kayenta=KayentaSettings(judgment_interval_s=None))
    verdict = judge(simulate("error-regression", seed=1), spec, judge="kayenta")
    judged = [t.timestamp for t in verdict.ticks if t.state["judged"]]
    assert judged == [minutes(180)]
    assert (verdict.decision, verdict.decided_at) == ("rollback", minutes(180))


def test_the_last_judgment_is_the_last_whole_interval():
    spec = Spec(kayenta=KayentaSettings(judgment_interval_s=1800, lifetime_s=6000))
    verdict = judge(simulate("healthy", seed=1), spec, judge="kayenta")
    judged = [t.timestamp for t in verdict.ticks if t.state["judged"]]
    assert judged == [minutes(30), minutes(60), minutes(90)]
    assert (verdict.decision, verdict.decided_at) == ("promote", minutes(90))


# -- one point per variant -------------------------------------------------------------------
# spinnaker/kayenta at a69573be9d8fededacf80817e4151a2c8df41276 has no minimum sample size:
# kayenta-judge/src/main/scala/com/netflix/kayenta/judge/classifiers/metric/
# MannWhitneyClassifier.scala (classify, lines 145-178) only turns empty series into Nodata
# and identical or single-valued data into Pass before running the test, after adding noise
# to two constant groups (MannWhitneyUTest, lines 38-55). The test,
# kayenta-mannwhitney/src/main/scala/com/netflix/kayenta/mannwhitney/MannWhitney.scala,
# searches the interval from the shift min(experiment) - max(control) (calculateConfidence
# Interval, lines 80-108, evaluating wilcoxonDiff there first); with one point each that
# shift makes the two points tie, the tie-corrected variance is 0 and wilcoxonDiff throws
# (lines 58-78, line 76). NetflixACAJudge.scala (classifyMetric, lines 157-173) catches it
# as the label Error without setting critical (false by default: kayenta-core/.../results/
# CanaryAnalysisResult.java, line 54), and WeightedSumScorer.scala (lines 29-43, 80-82)
# counts neither Error in a group nor a non-critical result as a critical failure. So on a
# 1-minute plan judged every minute, the first judgment is Error, not High.


def test_one_point_per_variant_is_an_error_not_a_difference():
    for control, experiment in ([0.0166], [0.0332]), ([0.03], [0.0166]), ([0.0], [0.03]):
        assert interval_undefined(np.array(control), np.array(experiment))
        result = classify(control, experiment, critical=True)
        assert (result.label, result.critical, result.ci) == ("Error", False, None)
        assert "Metric Classification Failed" in result.reason
    # the scorer leaves it out: a group of Errors counts as 100, nothing fails the canary
    assert score([outcome("Error", critical=False)]).summary == 100.0


def test_the_one_point_error_follows_kayentas_floating_point():
    # The tie is exact floating point: e - (e - c) == c. Within a factor of 2 it always
    # holds (Sterbenz); further apart rounding may leave the points distinct, and then
    # Kayenta's zero-width interval [e - c, e - c] decides: 0.1 - (0.1 - 1.0) is 1.0,
    # a tie (Error), but 1.0 - (1.0 - 0.1) is 0.09999999999999998, not 0.1 (High).
    assert interval_undefined(np.array([1.0]), np.array([0.1]))
    assert not interval_undefined(np.array([0.1]), np.array([1.0]))
    # two points on one side give the test enough ranks: no Error
    assert not interval_undefined(np.array([1.0, 1.1]), np.array([1.05]))
    assert classify([1.0, 1.1], [5.0], critical=True).label == "High"


def test_a_first_minute_judgment_does_not_roll_back_a_healthy_canary():
    spec = Spec(kayenta=KayentaSettings(judgment_interval_s=60))
    verdict = judge(simulate("healthy", seed=1), spec, judge="kayenta")
    first = verdict.ticks[0]
    assert first.state["judged"] and first.decision == "continue"
    assert {m.details["label"] for m in first.metrics} == {"Error"}
    assert {m.classification for m in first.metrics} == {"inconclusive"}
    assert first.state["score"] == 100.0
    assert verdict.ticks[1].metrics[0].details["n_control"] == 2
    assert verdict.decision == "promote"


def test_a_spec_that_leaves_direction_criticality_and_interval_unset_reaches_each_judge():
    # a rolloutlab YAML metric without direction/critical and no judgmentInterval: Kayenta
    # applies NetflixACAJudge's defaults, the rolloutlab and Flagger judges increase/critical
    spec = Spec.load(
        "metrics:\n- {name: cpu, kind: gauge, metric: cpu, thresholdRange: {max: 1}}\n"
    )
    cpu = spec.metrics[0]
    assert (cpu.direction, cpu.critical, spec.kayenta.judgment_interval_s) == (None, None, None)
    assert metric_config(cpu) == ("either", False)
    assert (cpu.direction_or("increase"), cpu.critical_or(True)) == ("increase", True)
    assert Spec.load(spec.to_yaml()) == spec  # written out, still unset
    assert [m.direction for m in Spec().metrics] == ["increase", "increase"]  # built-ins
    assert all(m.critical for m in Spec().metrics)
