"""DEM contact mechanics against theory worked by hand.

- Rolling resistance (constant directional torque ``M = mu_r R* F_n``, opposing the
  relative rolling): a sphere rolling on the foil without slip decelerates at
  ``5/7 mu_r g``; a sphere spinning on top of a glued one, without friction, loses
  spin at ``mu_r R* F_n / I``, and both stop rather than reverse.
- Mindlin tangential spring ``k_t = 8 G* sqrt(R* d)`` below the slip limit: a sphere
  given a tangential kick on an elastic contact oscillates at
  ``sqrt(k_t (1/m + R^2/I)) = sqrt(3.5 k_t / m)``.
- Walls (foil, head, side walls) push with Hertz ``4/3 E* sqrt(R) d^1.5``, plus
  ``gamma_n v_n`` while the head moves.

Effective constants are written out here from their textbook formulas (Johnson,
"Contact Mechanics", 1985; Mindlin 1949; Tsuji et al. 1992), not taken from
:mod:`synthcal.dem.material`.
"""

import math

import numpy as np
import pytest

from synthcal.dem import Material, Simulation

E_NMC, NU_NMC, RHO_NMC = 200e9, 0.3, 4650.0
E_CBD, NU_CBD, RHO_CBD = 2e9, 0.25, 930.0


def _mat(e_mod=E_NMC, nu=NU_NMC, rho=RHO_NMC, restitution=1.0, friction=0.5, rolling=0.0):
    return Material(youngs_modulus_pa=e_mod, poisson_ratio=nu, density_kg_m3=rho, restitution=restitution,
                    friction=friction, rolling_friction=rolling)


def _wall_estar(e_mod, nu):
    """Hertz E* of a sphere on a rigid plane: E / (1 - nu^2)."""
    return e_mod / (1 - nu ** 2)


def _gstar(*materials):
    """Mindlin G*: 1/G* = sum over bodies of 2 (2 - nu)(1 + nu) / E (a rigid wall adds nothing)."""
    return 1.0 / sum(2 * (2 - nu) * (1 + nu) / e_mod for e_mod, nu in materials)


def _mass(r_m, rho):
    return rho * 4 / 3 * math.pi * r_m ** 3


def _rest_overlap(weight_n, estar, rstar_m):
    """Hertz overlap carrying ``weight_n``: (3 W / (4 E* sqrt(R*)))^(2/3)."""
    return (3 * weight_n / (4 * estar * math.sqrt(rstar_m))) ** (2 / 3)


# ---- rolling resistance ----------------------------------------------------------

R_UM, G = 5.0, 1e6          # a large body force: the contact forces dwarf rounding
MU_R = 0.1


def _rolling_on_foil(v0_m_s, rolling=MU_R):
    """A sphere resting on the foil at its Hertz overlap, rolling along +x without slip.

    Restitution 0.5 damps the tangential spring, which starts unloaded and so rings
    about the friction force that rolling resistance asks for."""
    mat = _mat(restitution=0.5, rolling=rolling)
    r = R_UM * 1e-6
    m = _mass(r, RHO_NMC)
    rest = _rest_overlap(m * G, _wall_estar(E_NMC, NU_NMC), r)
    # rolling along +x: the contact point at rest when w_y R = v_x (z-y-x components)
    return Simulation([[R_UM - rest * 1e6, 0.0, 0.0]], [R_UM], mat, velocities_um_s=[[0, 0, v0_m_s * 1e6]],
                      angular_velocities_rad_s=[[0, v0_m_s / r, 0]], bottom_z_um=0.0,
                      body_acceleration_m_s2=(-G, 0, 0))


def test_sphere_rolling_on_the_foil_decelerates_at_5_7_mu_r_g():
    """Rolling without slip, m a = F, I dw/dt = -R F - mu_r R m g, a = R dw/dt:
    a = -mu_r m g R^2 / (I + m R^2) = -5/7 mu_r g."""
    v0 = 0.1
    sim = _rolling_on_foil(v0)
    times, speeds, spins = [], [], []
    for _ in range(6):
        sim.run(1e-7)
        times.append(sim.time_s)
        speeds.append(sim.velocities_um_s[0, 2] * 1e-6)
        spins.append(sim.angular_velocities_rad_s[0, 1] * R_UM * 1e-6)
    decel = 5 / 7 * MU_R * G
    # still rolling (0.04 m/s left): the speed falls on the straight line v0 - a t, up to the
    # damped ringing of the tangential spring (1e-5 v0 when written)
    np.testing.assert_allclose(speeds, v0 - decel * np.asarray(times), rtol=0, atol=1e-4 * v0)
    slope = np.polyfit(times, speeds, 1)[0]
    assert slope == pytest.approx(-decel, rel=1e-3)
    np.testing.assert_allclose(spins, speeds, rtol=0, atol=1e-4 * v0)  # no slip: w R = v throughout


def test_rolling_sphere_without_rolling_friction_keeps_its_speed_and_spin_axis():
    sim = _rolling_on_foil(0.1, rolling=0.0)
    sim.run(6e-7)
    assert sim.velocities_um_s[0, 2] * 1e-6 == pytest.approx(0.1, rel=1e-3)
    w = sim.angular_velocities_rad_s[0]
    assert w[1] * R_UM * 1e-6 == pytest.approx(0.1, rel=1e-3)
    assert w[0] == 0.0 and w[2] == 0.0   # no torque about the normal or the direction of travel


MU, V0 = 0.3, 0.1
T_ROLL = 2 * V0 / (7 * MU * G)   # 95 ns


def _sliding(restitution):
    """A sphere resting on the foil, launched along +x at V0 without spin (so it slides)."""
    r = R_UM * 1e-6
    rest = _rest_overlap(_mass(r, RHO_NMC) * G, _wall_estar(E_NMC, NU_NMC), r)
    return Simulation([[R_UM - rest * 1e6, 0.0, 0.0]], [R_UM], _mat(restitution=restitution, friction=MU),
                      velocities_um_s=[[0, 0, V0 * 1e6]], bottom_z_um=0.0, body_acceleration_m_s2=(-G, 0, 0))


# restitution 1: no tangential damping, the Coulomb limit alone holds the spring history;
# restitution 0.5: the damping force alone would exceed the limit tenfold
@pytest.mark.parametrize("restitution", [1.0, 0.5])
def test_sliding_sphere_decelerates_at_mu_g_and_spins_up_at_5_2_mu_g(restitution):
    """Friction mu m g slows it (dv/dt = -mu g) and spins it up (R dw/dt = 5/2 mu g)
    until w R = v at t* = 2 v0 / (7 mu g)."""
    sim = _sliding(restitution)
    samples = []
    for _ in range(2):   # rates between a quarter and a half of the sliding time
        sim.run(0.25 * T_ROLL)
        samples.append((sim.time_s, sim.velocities_um_s[0, 2] * 1e-6, sim.angular_velocities_rad_s[0, 1] * R_UM * 1e-6))
    (t1, v1, w1), (t2, v2, w2) = samples
    # rates, not values: without damping the unloaded spring of t = 0 gives no friction
    # for the first half step
    assert (v2 - v1) / (t2 - t1) == pytest.approx(-MU * G, rel=1e-3)
    assert (w2 - w1) / (t2 - t1) == pytest.approx(2.5 * MU * G, rel=1e-3)
    assert v2 > w2   # still sliding


def test_sliding_sphere_ends_rolling_at_5_7_v0():
    sim = _sliding(0.5)
    sim.run(1.5 * T_ROLL)
    assert sim.velocities_um_s[0, 2] * 1e-6 == pytest.approx(5 / 7 * V0, rel=2e-3)
    assert sim.angular_velocities_rad_s[0, 1] * R_UM * 1e-6 == pytest.approx(5 / 7 * V0, rel=2e-3)


def test_rolling_resistance_leaves_a_resting_sphere_at_rest():
    sim = _rolling_on_foil(0.0)   # w = 0: no direction to resist
    sim.run(1e-7)
    assert np.all(sim.angular_velocities_rad_s == 0) and np.all(np.isfinite(sim.positions_um))


def test_rolling_resistance_does_not_resist_a_twist_about_the_normal():
    """The model resists rolling (w tangential to the contact), not twisting (w along n):
    a sphere spinning about the foil's normal keeps its spin."""
    r = R_UM * 1e-6
    rest = _rest_overlap(_mass(r, RHO_NMC) * G, _wall_estar(E_NMC, NU_NMC), r)
    sim = Simulation([[R_UM - rest * 1e6, 0.0, 0.0]], [R_UM], _mat(restitution=0.5, rolling=MU_R),
                     angular_velocities_rad_s=[[2e4, 0, 0]], bottom_z_um=0.0, body_acceleration_m_s2=(-G, 0, 0))
    sim.run(3e-7)
    np.testing.assert_array_equal(sim.angular_velocities_rad_s[0], [2e4, 0, 0])


def _spinning_on_glued_sphere(w0):
    """Sphere B (CBD) on top of sphere A (NMC, glued to the foil), spinning about y, no friction.

    Only the rolling torque acts on B's spin; with mu = 0 there is no tangential force."""
    nmc = _mat(friction=0.0, rolling=MU_R)
    cbd = _mat(E_CBD, NU_CBD, RHO_CBD, friction=0.0, rolling=MU_R)
    r = R_UM * 1e-6
    m_b = _mass(r, RHO_CBD)
    estar = 1.0 / ((1 - NU_NMC ** 2) / E_NMC + (1 - NU_CBD ** 2) / E_CBD)
    rest = _rest_overlap(m_b * G, estar, r / 2)
    x = [[R_UM, 0.0, 0.0], [3 * R_UM - rest * 1e6, 0.0, 0.0]]
    sim = Simulation(x, [R_UM, R_UM], (nmc, cbd), kinds=[0, 1], angular_velocities_rad_s=[[0, 0, 0], [0, w0, 0]],
                     bottom_z_um=0.0, body_acceleration_m_s2=(-G, 0, 0))
    assert sim.fix_touching_bottom(0.0) == 1
    return sim, m_b * G, 0.4 * m_b * r ** 2


def test_spin_on_a_contact_decays_at_mu_r_rstar_fn_over_inertia():
    # pair constants: mu_r = sqrt(0.1 * 0.1) = 0.1, R* = R / 2, F_n = m_B g
    w0 = 2e4
    sim, fn, inertia = _spinning_on_glued_sphere(w0)
    rate = MU_R * (R_UM * 1e-6 / 2) * fn / inertia   # = 1.25 mu_r g / R = 2.5e4 rad/s^2
    times, spins = [], []
    for _ in range(5):
        sim.run(1e-7)
        times.append(sim.time_s)
        spins.append(sim.angular_velocities_rad_s[1, 1])
    np.testing.assert_allclose(spins, w0 - rate * np.asarray(times), rtol=0, atol=1e-4 * w0)
    assert np.abs(sim.angular_velocities_rad_s[1, [0, 2]]).max() < 1e-6 * w0   # about y only
    assert np.all(sim.angular_velocities_rad_s[0] == 0)                         # A is glued


def test_rolling_resistance_stops_a_spin_and_does_not_reverse_it():
    w0 = 2e4
    sim, fn, inertia = _spinning_on_glued_sphere(w0)
    stop = w0 / (MU_R * (R_UM * 1e-6 / 2) * fn / inertia)  # 0.8 µs
    sim.run(1.5 * stop)
    # the torque is capped at I* |w| / dt, I* = I_A I_B / (I_A + I_B), so it cannot overshoot:
    # the spin then halves every step down to nothing (the constant torque alone takes
    # 2e-5 rad/s a step, so a torque that let go at 1 rad/s would leave 5e-5 w0)
    assert abs(sim.angular_velocities_rad_s[1, 1]) < 1e-6 * w0


# ---- Mindlin tangential stiffness ---------------------------------------------------

def _tangential_period(sim, index, steps):
    """Period (s) of the x force on particle ``index`` from its zero crossings."""
    force = []
    for _ in range(steps):
        sim.step(1)
        force.append(sim.forces_n[index, 2])
    force = np.asarray(force)
    s = np.flatnonzero(np.sign(force[1:]) != np.sign(force[:-1]))
    # linear interpolation of each crossing between two steps
    t = (s + force[s] / (force[s] - force[s + 1])) * sim.dt_s
    assert len(t) >= 5, "fewer than two periods observed"
    return 2 * np.mean(np.diff(t)), np.abs(force).max()


def test_sphere_on_the_foil_oscillates_tangentially_at_the_mindlin_stiffness():
    """Elastic contact (e = 1, no damping), a sideways kick v0 with no spin: the contact
    point oscillates on the spring k_t with 1/m_eff = 1/m + R^2/I = 3.5/m."""
    r, v0 = R_UM * 1e-6, 0.003
    m = _mass(r, RHO_NMC)
    estar = _wall_estar(E_NMC, NU_NMC)
    delta = _rest_overlap(m * G, estar, r)
    sim = Simulation([[R_UM - delta * 1e6, 0.0, 0.0]], [R_UM], _mat(), velocities_um_s=[[0, 0, v0 * 1e6]],
                     bottom_z_um=0.0, body_acceleration_m_s2=(-G, 0, 0))
    kt = 8 * _gstar((E_NMC, NU_NMC)) * math.sqrt(r * delta)
    omega = math.sqrt(3.5 * kt / m)
    period, fmax = _tangential_period(sim, 0, int(4 * 2 * math.pi / omega / sim.dt_s))
    assert fmax < 0.5 * 0.5 * m * G    # well below the slip limit mu F_n
    # 56 steps a period: velocity Verlet shortens it by (omega dt)^2 / 24 = 5e-4, and the
    # largest sampled force misses the peak by up to (pi / 56)^2 / 2 = 1.6e-3
    assert period == pytest.approx(2 * math.pi / omega, rel=2e-3)
    assert fmax == pytest.approx(v0 * math.sqrt(kt * m / 3.5), rel=5e-3)   # k_t s_max, s_max = v0 / omega


def test_sphere_on_a_glued_sphere_oscillates_at_the_pair_mindlin_stiffness():
    """The same on a particle pair of two materials: G* from both, R* = R/2."""
    r, v0 = R_UM * 1e-6, 0.002
    m_b = _mass(r, RHO_CBD)
    estar = 1.0 / ((1 - NU_NMC ** 2) / E_NMC + (1 - NU_CBD ** 2) / E_CBD)
    delta = _rest_overlap(m_b * G, estar, r / 2)
    x = [[R_UM, 0.0, 0.0], [3 * R_UM - delta * 1e6, 0.0, 0.0]]
    sim = Simulation(x, [R_UM, R_UM], (_mat(), _mat(E_CBD, NU_CBD, RHO_CBD)), kinds=[0, 1],
                     velocities_um_s=[[0, 0, 0], [0, 0, v0 * 1e6]], bottom_z_um=0.0,
                     body_acceleration_m_s2=(-G, 0, 0))
    assert sim.fix_touching_bottom(0.0) == 1
    kt = 8 * _gstar((E_NMC, NU_NMC), (E_CBD, NU_CBD)) * math.sqrt(r / 2 * delta)
    omega = math.sqrt(3.5 * kt / m_b)
    period, fmax = _tangential_period(sim, 1, int(4 * 2 * math.pi / omega / sim.dt_s))
    assert fmax < 0.5 * 0.5 * m_b * G
    assert period == pytest.approx(2 * math.pi / omega, rel=2e-3)          # as on the foil
    assert fmax == pytest.approx(v0 * math.sqrt(kt * m_b / 3.5), rel=5e-3)


# ---- walls push with Hertz ------------------------------------------------------------

OVERLAP_UM = 0.02
BOX = (0.0, 20.0, 0.0, 20.0)   # y_lo, y_hi, x_lo, x_hi (µm)


def _hertz_wall(r_um, overlap_um):
    return 4 / 3 * _wall_estar(E_NMC, NU_NMC) * math.sqrt(r_um * 1e-6) * (overlap_um * 1e-6) ** 1.5


@pytest.mark.parametrize("wall, position, direction", [
    ("y_lo", (10.0, R_UM - OVERLAP_UM, 10.0), (0, 1, 0)),
    ("y_hi", (10.0, 20.0 - R_UM + OVERLAP_UM, 10.0), (0, -1, 0)),
    ("x_lo", (10.0, 10.0, R_UM - OVERLAP_UM), (0, 0, 1)),
    ("x_hi", (10.0, 10.0, 20.0 - R_UM + OVERLAP_UM), (0, 0, -1)),
    ("foil", (R_UM - OVERLAP_UM, 10.0, 10.0), (1, 0, 0)),
])
def test_each_wall_pushes_a_sphere_out_with_the_hertz_force(wall, position, direction):
    sim = Simulation([position], [R_UM], _mat(restitution=0.5), bottom_z_um=0.0, box_yx_um=BOX)
    expected = _hertz_wall(R_UM, OVERLAP_UM) * np.asarray(direction, float)
    np.testing.assert_allclose(sim.forces_n[0], expected, rtol=1e-6, atol=1e-6 * abs(expected).max())


def _alpha(e):
    """Tsuji's damping coefficient for restitution e: 2 sqrt(5/6) |ln e| / sqrt(ln^2 e + pi^2)."""
    return 2 * math.sqrt(5 / 6) * -math.log(e) / math.sqrt(math.log(e) ** 2 + math.pi ** 2)


@pytest.mark.parametrize("wall, position, direction", [
    ("y_lo", (10.0, R_UM - OVERLAP_UM, 10.0), (0, 1, 0)),
    ("x_hi", (10.0, 10.0, 20.0 - R_UM + OVERLAP_UM), (0, 0, -1)),
    ("foil", (R_UM - OVERLAP_UM, 10.0, 10.0), (1, 0, 0)),
])
@pytest.mark.parametrize("approach", [1.0, -1.0])
def test_a_wall_adds_gamma_n_v_n_against_a_sphere_moving_in_or_out(wall, position, direction, approach):
    """Moving into the wall at V the push is Hertz + gamma_n V, moving out Hertz - gamma_n V,
    gamma_n = alpha sqrt(2 E* sqrt(R d) m)."""
    e, speed = 0.5, 0.05
    outward = np.asarray(direction, float)
    sim = Simulation([position], [R_UM], _mat(restitution=e), velocities_um_s=[-approach * speed * 1e6 * outward],
                     bottom_z_um=0.0, box_yx_um=BOX)
    r, d = R_UM * 1e-6, OVERLAP_UM * 1e-6
    gamma = _alpha(e) * math.sqrt(2 * _wall_estar(E_NMC, NU_NMC) * math.sqrt(r * d) * _mass(r, RHO_NMC))
    expected = (_hertz_wall(R_UM, OVERLAP_UM) + approach * gamma * speed) * outward
    np.testing.assert_allclose(sim.forces_n[0], expected, rtol=1e-6, atol=1e-6 * abs(expected).max())


def test_a_sphere_clear_of_every_wall_feels_nothing():
    sim = Simulation([[R_UM + 0.01, 10.0, 10.0]], [R_UM], _mat(), bottom_z_um=0.0, box_yx_um=BOX)
    assert np.all(sim.forces_n == 0)


@pytest.mark.parametrize("overlap_um", [0.005, 0.02, 0.08])
def test_head_force_on_a_glued_sphere_is_hertz(overlap_um):
    sim = Simulation([[R_UM, 10.0, 10.0]], [R_UM], _mat(restitution=0.5), bottom_z_um=0.0)
    sim.fix_touching_bottom(0.0)
    sim.set_head(2 * R_UM - overlap_um)
    sim.step(1)
    assert sim.head_force_n == pytest.approx(_hertz_wall(R_UM, overlap_um), rel=1e-6)
    assert sim.forces_n[0, 0] == pytest.approx(-_hertz_wall(R_UM, overlap_um), rel=1e-6)  # pushes it down


def test_moving_head_adds_the_restitution_damping_force():
    """Head coming down at V onto a glued sphere: F = 4/3 E* sqrt(R) d^1.5 + gamma_n V with
    gamma_n = alpha sqrt(2 E* sqrt(R d) m), alpha = 2 sqrt(5/6) |ln e| / sqrt(ln^2 e + pi^2)."""
    e, speed = 0.5, 0.05  # m/s
    sim = Simulation([[R_UM, 10.0, 10.0]], [R_UM], _mat(restitution=e), bottom_z_um=0.0)
    sim.fix_touching_bottom(0.0)
    sim.set_head(2 * R_UM + 0.001, velocity_um_s=-speed * 1e6)
    sim.run(2e-7)
    overlap_um = R_UM - (sim.head_z_um - R_UM)
    assert overlap_um > 0.005   # the head is well into the sphere
    r, d = R_UM * 1e-6, overlap_um * 1e-6
    gamma = _alpha(e) * math.sqrt(2 * _wall_estar(E_NMC, NU_NMC) * math.sqrt(r * d) * _mass(r, RHO_NMC))
    assert sim.head_force_n == pytest.approx(_hertz_wall(R_UM, overlap_um) + gamma * speed, rel=1e-6)
