from django.apps import AppConfig


class BlueprintsConfig(AppConfig):
    name = "blueprints"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from blueprints.evaluation import evaluate_mission_success, evaluate_phase_exit, evaluate_task_acceptance
        from tasks.acceptance import register_acceptance_evaluator, register_success_evaluator
        from tasks.phase_gate import register_evaluator

        # The check registry answers the phase gate and the acceptance hooks of ``tasks`` (which never imports
        # this app).
        register_evaluator(evaluate_phase_exit)
        register_acceptance_evaluator(evaluate_task_acceptance)
        register_success_evaluator(evaluate_mission_success)
