//! `kale submit`: upload the compiled pipeline to Kubeflow Pipelines and start one run;
//! one operation ([`kale::kubeflow::submit`]) whose ids this file prints.

use kale::kubeflow::submit::{SubmitPlan, Submitted, submit};

use crate::cli::SubmitArgs;

use super::load_pipeline;

pub fn run(args: &SubmitArgs) -> kale::Result<()> {
    let pipeline = load_pipeline(&args.notebook)?;
    let plan = SubmitPlan {
        params: args.params.clone(),
        endpoint: args.kfp.kfp_endpoint.clone(),
        namespace: args.kfp.namespace.clone(),
        experiment: args.experiment.clone(),
        run_name: args.run_name.clone(),
        upload_only: args.upload_only,
    };
    match submit(pipeline, &plan, &|line| kale::errln!("{line}"))? {
        Submitted::Uploaded(version) => {
            kale::outln!("{} {}", version.pipeline_id, version.version_id)?
        }
        Submitted::Started(run_id) => kale::outln!("{run_id}")?,
    }
    Ok(())
}
